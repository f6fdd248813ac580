package configfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel's answers this package interprets (configfs.c, f_fs.c).
var (
	errBusy  error = syscall.EBUSY  // UDC bound elsewhere; mount or function still in use
	errNoDev error = syscall.ENODEV // UDC write before the FunctionFS descriptors (ffs_do_functionfs_bind)
)

// FS is the file-system surface of configfs and sysfs that the package uses. OSFS is the real one; tests use a
// temporary tree with configfs's rules.
type FS interface {
	Stat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	ReadFile(name string) ([]byte, error)
	// WriteFile writes an attribute (configfs attributes exist as soon as their directory does).
	WriteFile(name string, data []byte) error
	Mkdir(name string) error
	MkdirAll(name string) error
	Rmdir(name string) error
	Symlink(target, link string) error
	// Remove unlinks a symbolic link.
	Remove(name string) error
}

// OSFS is the real file system.
type OSFS struct{}

// Stat is os.Lstat.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// ReadDir is os.ReadDir.
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// ReadFile is os.ReadFile.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// WriteFile writes data in one write(2), as configfs attributes require.
func (OSFS) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// Mkdir is os.Mkdir with mode 0755.
func (OSFS) Mkdir(name string) error { return os.Mkdir(name, 0o755) }

// MkdirAll is os.MkdirAll with mode 0755.
func (OSFS) MkdirAll(name string) error { return os.MkdirAll(name, 0o755) }

// Rmdir is rmdir(2).
func (OSFS) Rmdir(name string) error {
	if err := unix.Rmdir(name); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// Symlink is os.Symlink.
func (OSFS) Symlink(target, link string) error { return os.Symlink(target, link) }

// Remove is unlink(2).
func (OSFS) Remove(name string) error {
	if err := unix.Unlink(name); err != nil {
		return &fs.PathError{Op: "unlink", Path: name, Err: err}
	}
	return nil
}

// System is the machine the gadget lives on. The zero value is the real Linux machine; tests replace fields.
type System struct {
	Root   string // configfs mount point; default /sys/kernel/config
	UDCDir string // where UDCs are listed; default /sys/class/udc
	FS     FS     // default OSFS
	// Euid returns the effective user id; default os.Geteuid.
	Euid func() int
	// IsConfigfs reports whether dir is a mounted configfs; default statfs(2) magic CONFIGFS_MAGIC.
	IsConfigfs func(dir string) bool
	// Mount mounts FunctionFS instance name on dir; default mount(2) with type "functionfs".
	Mount func(name, dir string) error
	// Unmount unmounts dir and reports whether it was mounted; default umount(2) (EINVAL and ENOENT mean "not
	// mounted"). It must return an error wrapping syscall.EBUSY while a daemon holds the mount.
	Unmount func(dir string) (mounted bool, err error)
}

func (s System) withDefaults() System {
	if s.Root == "" {
		s.Root = "/sys/kernel/config"
	}
	if s.UDCDir == "" {
		s.UDCDir = "/sys/class/udc"
	}
	if s.FS == nil {
		s.FS = OSFS{}
	}
	if s.Euid == nil {
		s.Euid = os.Geteuid
	}
	if s.IsConfigfs == nil {
		s.IsConfigfs = func(dir string) bool {
			var st unix.Statfs_t
			return unix.Statfs(dir, &st) == nil && uint32(st.Type) == 0x62656570 // CONFIGFS_MAGIC
		}
	}
	if s.Mount == nil {
		s.Mount = func(name, dir string) error { return unix.Mount(name, dir, "functionfs", 0, "") }
	}
	if s.Unmount == nil {
		s.Unmount = func(dir string) (bool, error) {
			switch err := unix.Unmount(dir, 0); {
			case err == nil:
				return true, nil
			case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
				return false, nil
			default:
				return false, err
			}
		}
	}
	return s
}

func (s System) gadgetDir(name string) string { return filepath.Join(s.Root, "usb_gadget", name) }

// Check reports the first reason the machine cannot host a gadget: not root (ErrNotRoot), no configfs
// (ErrConfigfsNotMounted), no libcomposite (ErrNoLibcomposite).
func (s System) Check() error { return s.withDefaults().check() }

// check reports the first reason the machine cannot host a gadget: not root, no configfs, no libcomposite.
func (s System) check() error {
	if s.Euid() != 0 {
		return fmt.Errorf("configfs: %w (configfs and mount need root; try sudo)", ErrNotRoot)
	}
	if _, err := s.FS.Stat(filepath.Join(s.Root, "usb_gadget")); err == nil {
		return nil
	}
	if _, err := s.FS.Stat(s.Root); err != nil || !s.IsConfigfs(s.Root) {
		return fmt.Errorf("configfs: %w at %s (run 'modprobe configfs && mount -t configfs none %s')", ErrConfigfsNotMounted, s.Root, s.Root)
	}
	return fmt.Errorf("configfs: %w: %s has no usb_gadget directory (run 'modprobe libcomposite')", ErrNoLibcomposite, s.Root)
}

// UDCs lists the USB device controllers, sorted.
func (s System) UDCs() ([]string, error) {
	s = s.withDefaults()
	entries, err := s.FS.ReadDir(s.UDCDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("configfs: list UDCs in %s: %w", s.UDCDir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// udcHint tells how to get a UDC on the two kinds of machine the project targets.
const udcHint = "on a Raspberry Pi Zero add 'dtoverlay=dwc2' to /boot/firmware/config.txt and 'modules-load=dwc2' " +
	"after 'rootwait' in cmdline.txt, then reboot; on a PC run 'modprobe dummy_hcd' for a loopback controller"

// PickUDC resolves "" or "auto" to the only UDC there is, and checks that a named UDC exists.
func (s System) PickUDC(want string) (string, error) {
	s = s.withDefaults()
	names, err := s.UDCs()
	if err != nil {
		return "", err
	}
	if want == "" || want == "auto" {
		switch len(names) {
		case 0:
			return "", fmt.Errorf("configfs: %w in %s: %s", ErrNoUDC, s.UDCDir, udcHint)
		case 1:
			return names[0], nil
		default:
			return "", fmt.Errorf("configfs: %w: %s (use --udc NAME)", ErrAmbiguousUDC, strings.Join(names, ", "))
		}
	}
	for _, n := range names {
		if n == want {
			return want, nil
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("configfs: %w %q: %w in %s: %s", ErrUDCNotFound, want, ErrNoUDC, s.UDCDir, udcHint)
	}
	return "", fmt.Errorf("configfs: %w %q (have: %s)", ErrUDCNotFound, want, strings.Join(names, ", "))
}

// holderOf returns the name of another gadget bound to udc, or "".
func (s System) holderOf(udc, self string) string {
	entries, err := s.FS.ReadDir(filepath.Join(s.Root, "usb_gadget"))
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Name() == self {
			continue
		}
		b, err := s.FS.ReadFile(filepath.Join(s.Root, "usb_gadget", e.Name(), "UDC"))
		if err == nil && strings.TrimSpace(string(b)) == udc {
			return e.Name()
		}
	}
	return ""
}

// Status is what Inspect finds about a gadget.
type Status struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"`
	Exists    bool   `json:"exists"`               // the configfs directory exists
	VendorID  string `json:"vendor_id,omitempty"`  // as configfs prints it, e.g. 0x1209
	ProductID string `json:"product_id,omitempty"` // e.g. 0x0001
	UDC       string `json:"udc,omitempty"`        // bound controller, "" when unbound
	// UDCState is /sys/class/udc/UDC/state: "not attached", "default", "addressed", "configured", "suspended"...
	UDCState string `json:"udc_state,omitempty"`
	// Connected is true when a host has at least addressed the device (state default, addressed, configured or
	// suspended); Configured when it has selected the configuration, so the reader is usable.
	Connected  bool `json:"host_connected"`
	Configured bool `json:"host_configured"`
}

// Inspect reports the state of the gadget called name (default DefaultName). It needs no root, and a missing
// gadget is not an error (Exists is false).
func Inspect(sys System, name string) (Status, error) {
	sys = sys.withDefaults()
	if name == "" {
		name = DefaultName
	}
	if err := validName(name); err != nil {
		return Status{}, err
	}
	st := Status{Name: name, Dir: sys.gadgetDir(name)}
	if _, err := sys.FS.Stat(st.Dir); err != nil {
		return st, nil
	}
	st.Exists = true
	read := func(p string) string {
		b, err := sys.FS.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	st.VendorID = read(filepath.Join(st.Dir, "idVendor"))
	st.ProductID = read(filepath.Join(st.Dir, "idProduct"))
	st.UDC = read(filepath.Join(st.Dir, "UDC"))
	if st.UDC != "" {
		st.UDCState = read(filepath.Join(sys.UDCDir, st.UDC, "state"))
		switch st.UDCState {
		case "default", "addressed", "configured", "suspended":
			st.Connected = true
		}
		st.Configured = st.UDCState == "configured"
	}
	return st, nil
}
