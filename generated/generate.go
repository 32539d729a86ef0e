// Package generated holds capygen's output for spec/capybara.yaml, committed
// so that the runtime builds without running the generator. Do not edit the
// files below it; edit the spec and regenerate:
//
//	make generate            # or:
//	go generate ./generated
//
// `make test` (capygen diff) fails when these files drift from the spec.
package generated

//go:generate go run ../cmd/capygen generate -spec ../spec/capybara.yaml -out .
