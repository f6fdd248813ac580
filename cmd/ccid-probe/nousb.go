//go:build !cgo

package main

import "errors"

func init() {
	newBackend = func() (backend, error) {
		return nil, errors.New("this ccid-probe was built without cgo, so without libusb: rebuild with CGO_ENABLED=1 (needs libusb-1.0-0-dev)")
	}
}
