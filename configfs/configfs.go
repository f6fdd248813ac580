// Package configfs creates and removes the USB gadget that carries the ccidgadget reader: a configfs gadget
// (/sys/kernel/config/usb_gadget/NAME) with one configuration and one FunctionFS function (ffs.NAME), the
// FunctionFS mount that the daemon serves, and the binding to a USB device controller (UDC).
//
// It does not speak FunctionFS itself (package gadget writes the descriptors and answers the host); it only
// lays out the kernel objects, in the order the kernel requires (Linux Documentation/usb/gadget_configfs.rst):
// gadget, strings, configuration, function, link, mount; then, once the daemon has written its descriptors,
// the UDC. Remove undoes everything in the reverse order and also cleans up what a crashed daemon left.
//
// Every file-system and mount operation goes through a System, so the package is tested against a temporary
// directory tree that mimics configfs.
package configfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// Typed errors callers branch on. Each comes wrapped with the path or name concerned and a hint.
var (
	// ErrNotRoot: the process is not root, so configfs and mount are off limits.
	ErrNotRoot = errors.New("must be run as root")
	// ErrConfigfsNotMounted: there is no configfs at System.Root.
	ErrConfigfsNotMounted = errors.New("configfs is not mounted")
	// ErrNoLibcomposite: configfs is mounted but has no usb_gadget directory (module libcomposite not loaded).
	ErrNoLibcomposite = errors.New("libcomposite is not loaded")
	// ErrNoUDC: the machine has no USB device controller.
	ErrNoUDC = errors.New("no USB device controller (UDC)")
	// ErrUDCNotFound: the UDC asked for does not exist.
	ErrUDCNotFound = errors.New("no such UDC")
	// ErrAmbiguousUDC: "auto" was asked for but there are several UDCs.
	ErrAmbiguousUDC = errors.New("several UDCs; choose one")
	// ErrUDCBusy: the UDC is bound to another gadget.
	ErrUDCBusy = errors.New("UDC is busy")
	// ErrExists: a gadget of that name already exists (left by a crash, or still running).
	ErrExists = errors.New("gadget already exists")
	// ErrNotFound: no gadget of that name.
	ErrNotFound = errors.New("no such gadget")
	// ErrInUse: the FunctionFS mount is held by a running daemon.
	ErrInUse = errors.New("gadget is in use by a running daemon")
	// ErrNotReady: the UDC refused to bind because the daemon has not written its descriptors yet.
	ErrNotReady = errors.New("function not ready: descriptors not written")
)

// Config describes the gadget. Zero fields take the defaults listed.
type Config struct {
	Name     string // gadget directory and FunctionFS instance name; default "ccidgadget"
	VendorID uint16 // idVendor; default 0x1209 (pid.codes)
	// ProductID is idProduct. 0 is a real product id (Gnuk's 234B:0000); only a Config with neither id set
	// takes the default 1209:0001 (the pid.codes test PID).
	ProductID     uint16
	BcdDevice     uint16 // bcdDevice; default 0x0100
	BcdUSB        uint16 // bcdUSB; default 0x0200
	Manufacturer  string // strings/0x409/manufacturer; default "ccidgadget"
	Product       string // strings/0x409/product; default "ccidgadget OpenPGP reader"
	Serial        string // strings/0x409/serialnumber; default "0001"
	Configuration string // configs/c.1/strings/0x409/configuration; default "CCID"
	MaxPower      int    // configs/c.1/MaxPower in mA; default 100
	// MaxSpeed, when set, is written to max_speed: "full-speed" forces 64-byte bulk packets on a high-speed
	// controller (for tests), "high-speed" caps a SuperSpeed one.
	MaxSpeed string
	// MountDir is where FunctionFS is mounted; default /dev/ffs-NAME.
	MountDir string
}

// DefaultName is the gadget name used when Config.Name is empty.
const DefaultName = "ccidgadget"

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.VendorID == 0 && c.ProductID == 0 {
		c.VendorID, c.ProductID = 0x1209, 0x0001
	}
	if c.BcdDevice == 0 {
		c.BcdDevice = 0x0100
	}
	if c.BcdUSB == 0 {
		c.BcdUSB = 0x0200
	}
	if c.Manufacturer == "" {
		c.Manufacturer = "ccidgadget"
	}
	if c.Product == "" {
		c.Product = "ccidgadget OpenPGP reader"
	}
	if c.Serial == "" {
		c.Serial = "0001"
	}
	if c.Configuration == "" {
		c.Configuration = "CCID"
	}
	if c.MaxPower == 0 {
		c.MaxPower = 100
	}
	if c.MountDir == "" {
		c.MountDir = "/dev/ffs-" + c.Name
	}
	return c
}

// validName reports whether name is usable as a configfs directory and FunctionFS instance name.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("configfs: invalid gadget name %q", name)
	}
	return nil
}

// Gadget is a gadget created by Create. Its methods are not safe for concurrent use.
type Gadget struct {
	sys    System
	cfg    Config
	dir    string
	udc    string
	closed bool
}

// Create lays out the gadget in configfs and mounts its FunctionFS instance at cfg.MountDir. It does not bind a
// UDC: the daemon must first open ep0 in MountDir and write its descriptors, then call Bind. On failure it
// removes whatever it created. If a gadget of that name exists already, it returns an error wrapping ErrExists.
func Create(sys System, cfg Config) (*Gadget, error) {
	sys = sys.withDefaults()
	cfg = cfg.withDefaults()
	if err := validName(cfg.Name); err != nil {
		return nil, err
	}
	if err := sys.check(); err != nil {
		return nil, err
	}
	dir := sys.gadgetDir(cfg.Name)
	if _, err := sys.FS.Stat(dir); err == nil {
		return nil, fmt.Errorf("configfs: %s: %w (left by a crash, or ccid-gadget is still running): run 'ccid-gadget down' to remove it", dir, ErrExists)
	}
	g := &Gadget{sys: sys, cfg: cfg, dir: dir}
	if err := g.create(); err != nil {
		if rerr := removeGadget(sys, cfg.Name, cfg.MountDir); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			err = fmt.Errorf("%w (cleanup: %v)", err, rerr)
		}
		return nil, err
	}
	return g, nil
}

func (g *Gadget) create() error {
	fsys, c, d := g.sys.FS, g.cfg, g.dir
	steps := []struct {
		mkdir string // directory to create, or
		file  string // attribute to write with
		value string
	}{
		{mkdir: d},
		{file: "idVendor", value: fmt.Sprintf("0x%04x", c.VendorID)},
		{file: "idProduct", value: fmt.Sprintf("0x%04x", c.ProductID)},
		{file: "bcdDevice", value: fmt.Sprintf("0x%04x", c.BcdDevice)},
		{file: "bcdUSB", value: fmt.Sprintf("0x%04x", c.BcdUSB)},
		// Class, subclass and protocol come from the interface: a single-function device.
		{file: "bDeviceClass", value: "0x00"},
		{file: "bDeviceSubClass", value: "0x00"},
		{file: "bDeviceProtocol", value: "0x00"},
		{file: "max_speed", value: c.MaxSpeed},
		{mkdir: "strings/0x409"},
		{file: "strings/0x409/manufacturer", value: c.Manufacturer},
		{file: "strings/0x409/product", value: c.Product},
		{file: "strings/0x409/serialnumber", value: c.Serial},
		{mkdir: "configs/c.1"},
		{file: "configs/c.1/MaxPower", value: fmt.Sprint(c.MaxPower)},
		{mkdir: "configs/c.1/strings/0x409"},
		{file: "configs/c.1/strings/0x409/configuration", value: c.Configuration},
		{mkdir: "functions/ffs." + c.Name},
	}
	for _, s := range steps {
		if s.mkdir != "" {
			p := s.mkdir
			if !filepath.IsAbs(p) {
				p = filepath.Join(d, p)
			}
			if err := fsys.Mkdir(p); err != nil {
				return g.explain(fmt.Errorf("configfs: mkdir %s: %w", p, err))
			}
			continue
		}
		if s.file == "max_speed" && s.value == "" {
			continue
		}
		p := filepath.Join(d, s.file)
		if err := fsys.WriteFile(p, []byte(s.value+"\n")); err != nil {
			return fmt.Errorf("configfs: write %s: %w", p, err)
		}
	}
	link := filepath.Join(d, "configs/c.1/ffs."+c.Name)
	if err := fsys.Symlink(filepath.Join(d, "functions/ffs."+c.Name), link); err != nil {
		return fmt.Errorf("configfs: link %s: %w", link, err)
	}
	if err := fsys.MkdirAll(c.MountDir); err != nil {
		return fmt.Errorf("configfs: create mount point %s: %w", c.MountDir, err)
	}
	if err := g.sys.Mount(c.Name, c.MountDir); err != nil {
		return fmt.Errorf("configfs: mount functionfs %s on %s: %w", c.Name, c.MountDir, err)
	}
	return nil
}

// explain turns the kernel's ENOENT on mkdir functions/ffs.NAME into a hint about usb_f_fs.
func (g *Gadget) explain(err error) error {
	if errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "/functions/ffs.") {
		return fmt.Errorf("%w (is the usb_f_fs module available? try 'modprobe usb_f_fs')", err)
	}
	return err
}

// Name returns the gadget's name.
func (g *Gadget) Name() string { return g.cfg.Name }

// Dir returns the gadget's configfs directory.
func (g *Gadget) Dir() string { return g.dir }

// MountDir returns the directory where FunctionFS is mounted (ep0 lives there).
func (g *Gadget) MountDir() string { return g.cfg.MountDir }

// Config returns the configuration the gadget was created with, defaults filled in.
func (g *Gadget) Config() Config { return g.cfg }

// UDC returns the controller the gadget is bound to, or "".
func (g *Gadget) UDC() string { return g.udc }

// Bind binds the gadget to udc ("" or "auto" picks the only UDC there is). Call it only after the daemon has
// written its FunctionFS descriptors and strings. A UDC bound to another gadget gives an error wrapping ErrUDCBusy.
func (g *Gadget) Bind(udc string) error {
	name, err := g.sys.PickUDC(udc)
	if err != nil {
		return err
	}
	p := filepath.Join(g.dir, "UDC")
	if err := g.sys.FS.WriteFile(p, []byte(name+"\n")); err != nil {
		switch {
		case errors.Is(err, errBusy):
			if other := g.sys.holderOf(name, g.cfg.Name); other != "" {
				return fmt.Errorf("configfs: bind %s: %w: it is bound to gadget %q (%s)", name, ErrUDCBusy, other, g.sys.gadgetDir(other))
			}
			return fmt.Errorf("configfs: bind %s: %w (bound to another gadget or driver)", name, ErrUDCBusy)
		case errors.Is(err, errNoDev):
			return fmt.Errorf("configfs: bind %s: %w", name, ErrNotReady)
		}
		return fmt.Errorf("configfs: bind %s: write %s: %w", name, p, err)
	}
	g.udc = name
	return nil
}

// Unbind detaches the gadget from its UDC, so the host sees an unplug. It is a no-op when not bound.
func (g *Gadget) Unbind() error {
	if err := unbind(g.sys, g.dir); err != nil {
		return err
	}
	g.udc = ""
	return nil
}

// Remove unbinds the UDC, unmounts FunctionFS and removes the gadget from configfs, in that order. The daemon
// must have closed its FunctionFS files first. Remove is idempotent.
func (g *Gadget) Remove() error {
	if g.closed {
		return nil
	}
	if err := removeGadget(g.sys, g.cfg.Name, g.cfg.MountDir); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	g.closed = true
	g.udc = ""
	return nil
}

func unbind(sys System, dir string) error {
	p := filepath.Join(dir, "UDC")
	b, err := sys.FS.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("configfs: read %s: %w", p, err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil
	}
	if err := sys.FS.WriteFile(p, []byte("\n")); err != nil && !errors.Is(err, errNoDev) {
		return fmt.Errorf("configfs: unbind: write %s: %w", p, err)
	}
	return nil
}

// Remove removes the gadget called name (default DefaultName) and its FunctionFS mount, whatever state a crashed
// or running daemon left it in: it unbinds the UDC, unmounts mountDir (default /dev/ffs-NAME), unlinks the
// functions from every configuration and removes every directory it finds under the gadget, deepest first.
// It returns an error wrapping ErrNotFound when there is no such gadget and no mount, and ErrInUse when a running
// daemon still holds the mount.
func Remove(sys System, name, mountDir string) error {
	sys = sys.withDefaults()
	if name == "" {
		name = DefaultName
	}
	if err := validName(name); err != nil {
		return err
	}
	if mountDir == "" {
		mountDir = "/dev/ffs-" + name
	}
	if err := sys.check(); err != nil {
		return err
	}
	return removeGadget(sys, name, mountDir)
}

func removeGadget(sys System, name, mountDir string) error {
	dir := sys.gadgetDir(name)
	_, statErr := sys.FS.Stat(dir)
	exists := statErr == nil
	if exists {
		if err := unbind(sys, dir); err != nil {
			return err
		}
	}
	mounted, err := sys.Unmount(mountDir)
	if err != nil {
		if errors.Is(err, errBusy) {
			return fmt.Errorf("configfs: unmount %s: %w (stop it first: systemctl stop ccid-gadget, or Ctrl-C)", mountDir, ErrInUse)
		}
		return fmt.Errorf("configfs: unmount %s: %w", mountDir, err)
	}
	if mounted {
		// The mount point is ours (created by Create); leave it if something else is in it.
		_ = sys.FS.Rmdir(mountDir)
	}
	if !exists {
		if mounted {
			return nil
		}
		return fmt.Errorf("configfs: %s: %w", dir, ErrNotFound)
	}
	// configs/*/: unlink functions, then remove strings/*, then the configuration itself.
	configs, err := subdirs(sys.FS, filepath.Join(dir, "configs"))
	if err != nil {
		return err
	}
	for _, c := range configs {
		entries, err := sys.FS.ReadDir(c)
		if err != nil {
			return fmt.Errorf("configfs: read %s: %w", c, err)
		}
		for _, e := range entries {
			if e.Type()&fs.ModeSymlink != 0 {
				p := filepath.Join(c, e.Name())
				if err := sys.FS.Remove(p); err != nil {
					return fmt.Errorf("configfs: unlink %s: %w", p, err)
				}
			}
		}
		if err := rmdirAll(sys.FS, filepath.Join(c, "strings")); err != nil {
			return err
		}
		if err := rmdir(sys.FS, c); err != nil {
			return err
		}
	}
	for _, group := range []string{"functions", "strings"} {
		if err := rmdirAll(sys.FS, filepath.Join(dir, group)); err != nil {
			return err
		}
	}
	return rmdir(sys.FS, dir)
}

// rmdirAll removes every subdirectory of dir (not dir itself, a default group in configfs).
func rmdirAll(fsys FS, dir string) error {
	subs, err := subdirs(fsys, dir)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := rmdir(fsys, s); err != nil {
			return err
		}
	}
	return nil
}

func rmdir(fsys FS, dir string) error {
	if err := fsys.Rmdir(dir); err != nil {
		if errors.Is(err, errBusy) {
			return fmt.Errorf("configfs: rmdir %s: %w", dir, ErrInUse)
		}
		return fmt.Errorf("configfs: rmdir %s: %w", dir, err)
	}
	return nil
}

func subdirs(fsys FS, dir string) ([]string, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("configfs: read %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}
