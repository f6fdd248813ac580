package store

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadDeviceSecret(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		wantErr bool
	}{
		{"32 random bytes", randBytes(t, 32), 0o600, false},
		{"16 bytes", randBytes(t, 16), 0o400, false},
		{"too short", randBytes(t, 15), 0o600, true},
		{"too long", randBytes(t, MaxDeviceSecretLen+1), 0o600, true},
		{"group readable", randBytes(t, 32), 0o640, true},
		{"world readable", randBytes(t, 32), 0o604, true},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		got, err := ReadDeviceSecret(path)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tc.name, err, tc.wantErr)
		}
		if err == nil && string(got) != string(tc.content) {
			t.Errorf("%s: content differs", tc.name)
		}
	}
	if _, err := ReadDeviceSecret(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
