package spec

import "testing"

// Check values from the CRC catalogue (reveng): the CRC of "123456789".
func TestCRCCatalogue(t *testing.T) {
	for _, tc := range []struct {
		crc  CRC
		want uint64
	}{
		{CRC{Name: "crc16_arc", Width: 16, Poly: 0x8005, Reversed: true}, 0xBB3D},
		{CRC{Name: "crc16_xmodem", Width: 16, Poly: 0x1021}, 0x31C3},
		{CRC{Name: "crc16_ccitt_false", Width: 16, Poly: 0x1021, Init: 0xFFFF}, 0x29B1},
		{CRC{Name: "crc16_dnp", Width: 16, Poly: 0x3D65, Reversed: true, XorOut: 0xFFFF}, 0xEA82},
		{CRC{Name: "crc32", Width: 32, Poly: 0x04C11DB7, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF}, 0xCBF43926},
		{CRC{Name: "crc32c", Width: 32, Poly: 0x1EDC6F41, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF}, 0xE3069283},
		{CRC{Name: "crc32_bzip2", Width: 32, Poly: 0x04C11DB7, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF}, 0xFC891918},
	} {
		if got := tc.crc.Sum([]byte("123456789")); got != tc.want {
			t.Errorf("%s.Sum(123456789) = %#x, want %#x", tc.crc.Name, got, tc.want)
		}
	}
}
