// Package prefault touches memory made beforehand, so that its first use
// does not take a page fault.
//
// The migration path allocates its objects ahead of time (see
// runtime/migrate's spares.go), but a new object on a fresh page is not
// mapped yet: the kernel maps the page at the first write, a fault that
// costs about 10 µs on this project's VMs. Touch takes that fault when the
// object is made, off the measured path.
package prefault

import "unsafe"

// pageSize is the smallest page size of the platforms the project runs on;
// touching more often than a page is harmless.
const pageSize = 4096

// Touch writes a zero byte into every page of *p. *p must be zero (a new
// object): the write changes nothing but the page's mapping.
func Touch[T any](p *T) {
	base := unsafe.Pointer(p)
	size := unsafe.Sizeof(*p)
	if size == 0 {
		return
	}
	// One byte per page, at the object's start, at each page boundary
	// inside it, and at its last byte.
	touch(base)
	first := (uintptr(base) + pageSize) &^ (pageSize - 1)
	for a := first; a < uintptr(base)+size; a += pageSize {
		touch(unsafe.Add(base, a-uintptr(base)))
	}
	touch(unsafe.Add(base, size-1))
}

//go:noinline
func touch(p unsafe.Pointer) { *(*byte)(p) = 0 }
