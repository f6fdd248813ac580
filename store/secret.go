package store

import (
	"fmt"
	"io"
	"os"
)

// MaxDeviceSecretLen bounds the device secret file.
const MaxDeviceSecretLen = 4096

// ReadDeviceSecret reads a device secret file for Options.DeviceSecret (the CLI's --device-secret FILE): its raw
// bytes, 16 to 4096 of them, from a file that neither group nor others may read. Generate one with
// `head -c 32 /dev/urandom > FILE; chmod 600 FILE` and keep it off the medium that holds the state file (a
// second card, a TPM-sealed blob, the boot partition of another device); see the package doc's threat model.
func ReadDeviceSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: device secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: device secret %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("store: device secret %s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxDeviceSecretLen+1))
	if err != nil {
		return nil, fmt.Errorf("store: device secret %s: %w", path, err)
	}
	if len(b) < 16 || len(b) > MaxDeviceSecretLen {
		return nil, fmt.Errorf("store: device secret %s: %d bytes, want 16 to %d", path, len(b), MaxDeviceSecretLen)
	}
	return b, nil
}
