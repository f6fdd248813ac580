package configfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeKernel mimics configfs, the UDC class directory and FunctionFS mounts inside a temporary directory.
// Rules copied from the kernel: mkdir of a gadget, strings, config or function creates its attributes and
// default groups; attributes cannot be created by writing; rmdir fails while user-made directories or links
// remain below; the UDC can be bound only once the function's descriptors are written, and only by one gadget;
// a mounted function cannot be removed, and a mount held by a daemon cannot be unmounted.
type fakeKernel struct {
	t        *testing.T
	sys      System
	userDirs map[string]bool
	mounts   map[string]string // mount dir -> ffs instance name
	ready    bool              // the daemon wrote its descriptors
	held     bool              // a daemon holds the mount open
	noFFS    bool              // usb_f_fs missing
	ops      []string          // log of mutating operations
}

func newFakeKernel(t *testing.T, udcs ...string) *fakeKernel {
	t.Helper()
	root := t.TempDir()
	k := &fakeKernel{t: t, userDirs: map[string]bool{}, mounts: map[string]string{}}
	cfg := filepath.Join(root, "config")
	udc := filepath.Join(root, "udc")
	for _, d := range []string{filepath.Join(cfg, "usb_gadget"), udc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range udcs {
		k.addUDC(filepath.Join(udc, u), "not attached")
	}
	k.sys = System{
		Root:       cfg,
		UDCDir:     udc,
		FS:         k,
		Euid:       func() int { return 0 },
		IsConfigfs: func(string) bool { return true },
		Mount:      k.mount,
		Unmount:    k.unmount,
	}
	return k
}

func (k *fakeKernel) addUDC(dir, state string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte(state+"\n"), 0o644); err != nil {
		k.t.Fatal(err)
	}
}

func (k *fakeKernel) log(op, p string) {
	k.ops = append(k.ops, op+" "+strings.TrimPrefix(p, k.sys.Root+"/usb_gadget/"))
}

func (k *fakeKernel) Stat(name string) (fs.FileInfo, error)      { return os.Lstat(name) }
func (k *fakeKernel) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (k *fakeKernel) ReadFile(name string) ([]byte, error)       { return os.ReadFile(name) }
func (k *fakeKernel) MkdirAll(name string) error                 { return os.MkdirAll(name, 0o755) }

func (k *fakeKernel) inConfigfs(p string) bool { return strings.HasPrefix(p, k.sys.Root+"/") }

func (k *fakeKernel) Mkdir(name string) error {
	if !k.inConfigfs(name) {
		return os.Mkdir(name, 0o755)
	}
	if k.noFFS && strings.Contains(filepath.Base(name), "ffs.") {
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOENT}
	}
	if err := os.Mkdir(name, 0o755); err != nil {
		return err
	}
	k.userDirs[name] = true
	k.log("mkdir", name)
	rel := strings.TrimPrefix(name, k.sys.Root+"/usb_gadget/")
	var attrs, groups []string
	switch parts := strings.Split(rel, "/"); {
	case len(parts) == 1:
		attrs = []string{"idVendor", "idProduct", "bcdDevice", "bcdUSB", "bDeviceClass", "bDeviceSubClass",
			"bDeviceProtocol", "bMaxPacketSize0", "UDC", "max_speed"}
		groups = []string{"strings", "configs", "functions", "os_desc"}
	case len(parts) == 3 && parts[1] == "strings":
		attrs = []string{"manufacturer", "product", "serialnumber"}
	case len(parts) == 3 && parts[1] == "configs":
		attrs = []string{"MaxPower", "bmAttributes"}
		groups = []string{"strings"}
	case len(parts) == 5 && parts[1] == "configs":
		attrs = []string{"configuration"}
	}
	for _, a := range attrs {
		if err := os.WriteFile(filepath.Join(name, a), nil, 0o644); err != nil {
			return err
		}
	}
	for _, g := range groups {
		if err := os.Mkdir(filepath.Join(name, g), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (k *fakeKernel) WriteFile(name string, data []byte) error {
	if !k.inConfigfs(name) {
		return os.WriteFile(name, data, 0o644)
	}
	if _, err := os.Stat(name); err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	if filepath.Base(name) == "UDC" {
		udc := strings.TrimSpace(string(data))
		if udc != "" {
			if !k.ready {
				return &fs.PathError{Op: "write", Path: name, Err: syscall.ENODEV}
			}
			if k.sys.holderOf(udc, filepath.Base(filepath.Dir(name))) != "" {
				return &fs.PathError{Op: "write", Path: name, Err: syscall.EBUSY}
			}
		}
		k.log("udc="+udc, name)
	}
	return os.WriteFile(name, data, 0o644)
}

func (k *fakeKernel) Rmdir(name string) error {
	if !k.inConfigfs(name) {
		return os.Remove(name)
	}
	if !k.userDirs[name] {
		return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EPERM}
	}
	for _, n := range k.mounts {
		if strings.HasSuffix(name, "/functions/ffs."+n) {
			return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EBUSY}
		}
	}
	busy := false
	filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
		if p != name && (k.userDirs[p] || d.Type()&fs.ModeSymlink != 0) {
			busy = true
		}
		return nil
	})
	if busy {
		return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(k.userDirs, name)
	k.log("rmdir", name)
	return os.RemoveAll(name)
}

func (k *fakeKernel) Symlink(target, link string) error {
	k.log("link", link)
	return os.Symlink(target, link)
}

func (k *fakeKernel) Remove(name string) error {
	k.log("unlink", name)
	return os.Remove(name)
}

func (k *fakeKernel) mount(name, dir string) error {
	if _, err := os.Stat(filepath.Join(k.sys.Root, "usb_gadget")); err != nil {
		return syscall.ENOENT
	}
	found := false
	gs, _ := os.ReadDir(filepath.Join(k.sys.Root, "usb_gadget"))
	for _, g := range gs {
		if _, err := os.Stat(filepath.Join(k.sys.Root, "usb_gadget", g.Name(), "functions", "ffs."+name)); err == nil {
			found = true
		}
	}
	if !found {
		return syscall.ENOENT
	}
	for _, n := range k.mounts {
		if n == name {
			return syscall.EBUSY
		}
	}
	k.mounts[dir] = name
	k.ops = append(k.ops, "mount "+name)
	return nil
}

func (k *fakeKernel) unmount(dir string) (bool, error) {
	name, ok := k.mounts[dir]
	if !ok {
		return false, nil
	}
	if k.held {
		return false, syscall.EBUSY
	}
	delete(k.mounts, dir)
	k.ops = append(k.ops, "umount "+name)
	return true, nil
}

func (k *fakeKernel) read(rel string) string {
	k.t.Helper()
	b, err := os.ReadFile(filepath.Join(k.sys.Root, "usb_gadget", rel))
	if err != nil {
		k.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (k *fakeKernel) cfg(name string) Config {
	return Config{Name: name, MountDir: filepath.Join(filepath.Dir(k.sys.Root), "ffs-"+name), Serial: "S1"}
}

func TestCreateBindRemove(t *testing.T) {
	k := newFakeKernel(t, "dummy_udc.0")
	g, err := Create(k.sys, k.cfg("ccid"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"ccid/idVendor": "0x1209", "ccid/idProduct": "0x0001", "ccid/bcdDevice": "0x0100", "ccid/bcdUSB": "0x0200",
		"ccid/bDeviceClass": "0x00", "ccid/strings/0x409/serialnumber": "S1",
		"ccid/strings/0x409/manufacturer": "ccidgadget", "ccid/strings/0x409/product": "ccidgadget OpenPGP reader",
		"ccid/configs/c.1/MaxPower": "100", "ccid/configs/c.1/strings/0x409/configuration": "CCID", "ccid/UDC": "",
		"ccid/max_speed": "", // untouched
	} {
		if got := k.read(rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(g.Dir(), "configs/c.1/ffs.ccid")); err != nil || target != filepath.Join(g.Dir(), "functions/ffs.ccid") {
		t.Errorf("function link = %q, %v", target, err)
	}
	if k.mounts[g.MountDir()] != "ccid" {
		t.Errorf("mounts = %v, want ccid on %s", k.mounts, g.MountDir())
	}

	// The UDC refuses the gadget until the daemon has written its descriptors.
	if err := g.Bind("auto"); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Bind before descriptors: %v, want ErrNotReady", err)
	}
	k.ready = true
	if err := g.Bind("auto"); err != nil {
		t.Fatal(err)
	}
	if got := k.read("ccid/UDC"); got != "dummy_udc.0" || g.UDC() != "dummy_udc.0" {
		t.Fatalf("UDC = %q / %q", got, g.UDC())
	}

	k.ops = nil
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"udc= ccid/UDC", "umount ccid", "unlink ccid/configs/c.1/ffs.ccid", "rmdir ccid/configs/c.1/strings/0x409",
		"rmdir ccid/configs/c.1", "rmdir ccid/functions/ffs.ccid", "rmdir ccid/strings/0x409", "rmdir ccid",
	}
	if !reflect.DeepEqual(k.ops, want) {
		t.Errorf("teardown order:\n got %q\nwant %q", k.ops, want)
	}
	if _, err := os.Stat(g.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("gadget dir still there: %v", err)
	}
	if _, err := os.Stat(g.MountDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mount point still there: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestCreateCustomConfig(t *testing.T) {
	k := newFakeKernel(t, "20980000.usb")
	c := k.cfg("tok")
	// 234B:0000 is Gnuk's: a product id 0 is kept, not replaced by the default.
	c.VendorID, c.ProductID, c.Manufacturer, c.Product, c.MaxPower, c.MaxSpeed = 0x234b, 0x0000, "M", "P", 250, "full-speed"
	if _, err := Create(k.sys, c); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"tok/idVendor": "0x234b", "tok/idProduct": "0x0000",
		"tok/strings/0x409/manufacturer": "M", "tok/strings/0x409/product": "P", "tok/configs/c.1/MaxPower": "250",
		"tok/max_speed": "full-speed"} {
		if got := k.read(rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(k *fakeKernel)
		want    error
		inError string
	}{
		{"not root", func(k *fakeKernel) { k.sys.Euid = func() int { return 1000 } }, ErrNotRoot, "sudo"},
		{"no configfs", func(k *fakeKernel) { k.sys.Root = filepath.Join(k.sys.Root, "missing") }, ErrConfigfsNotMounted, "mount -t configfs"},
		{"configfs not mounted", func(k *fakeKernel) {
			os.RemoveAll(filepath.Join(k.sys.Root, "usb_gadget"))
			k.sys.IsConfigfs = func(string) bool { return false }
		}, ErrConfigfsNotMounted, "mount -t configfs"},
		{"no libcomposite", func(k *fakeKernel) { os.RemoveAll(filepath.Join(k.sys.Root, "usb_gadget")) }, ErrNoLibcomposite, "modprobe libcomposite"},
		{"no usb_f_fs", func(k *fakeKernel) { k.noFFS = true }, fs.ErrNotExist, "modprobe usb_f_fs"},
		{"bad name", func(k *fakeKernel) {}, nil, "invalid gadget name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(t, "dummy_udc.0")
			tt.setup(k)
			c := k.cfg("ccid")
			if tt.name == "bad name" {
				c.Name = "a/b"
			}
			_, err := Create(k.sys, c)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.inError) {
				t.Fatalf("Create: %v, want %v containing %q", err, tt.want, tt.inError)
			}
			// Nothing is left behind.
			if _, serr := os.Stat(filepath.Join(k.sys.Root, "usb_gadget", "ccid")); serr == nil {
				t.Errorf("gadget directory left after failed Create")
			}
			if len(k.mounts) != 0 {
				t.Errorf("mounts left: %v", k.mounts)
			}
		})
	}
}

func TestBindErrors(t *testing.T) {
	t.Run("no UDC", func(t *testing.T) {
		k := newFakeKernel(t)
		g, err := Create(k.sys, k.cfg("ccid"))
		if err != nil {
			t.Fatal(err)
		}
		k.ready = true
		err = g.Bind("auto")
		if !errors.Is(err, ErrNoUDC) || !strings.Contains(err.Error(), "dtoverlay=dwc2") || !strings.Contains(err.Error(), "modprobe dummy_hcd") {
			t.Fatalf("Bind: %v", err)
		}
		if err := g.Bind("20980000.usb"); !errors.Is(err, ErrUDCNotFound) || !errors.Is(err, ErrNoUDC) {
			t.Fatalf("Bind named: %v", err)
		}
	})
	t.Run("several UDCs", func(t *testing.T) {
		k := newFakeKernel(t, "dummy_udc.0", "dummy_udc.1")
		g, _ := Create(k.sys, k.cfg("ccid"))
		k.ready = true
		if err := g.Bind("auto"); !errors.Is(err, ErrAmbiguousUDC) || !strings.Contains(err.Error(), "dummy_udc.0, dummy_udc.1") {
			t.Fatalf("Bind: %v", err)
		}
		if err := g.Bind("dummy_udc.1"); err != nil {
			t.Fatal(err)
		}
		if err := g.Bind("nope"); !errors.Is(err, ErrUDCNotFound) || errors.Is(err, ErrNoUDC) {
			t.Fatalf("Bind nope: %v", err)
		}
	})
	t.Run("UDC busy", func(t *testing.T) {
		k := newFakeKernel(t, "dummy_udc.0")
		k.ready = true
		other, err := Create(k.sys, Config{Name: "other", MountDir: filepath.Join(t.TempDir(), "o")})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Bind("dummy_udc.0"); err != nil {
			t.Fatal(err)
		}
		g, err := Create(k.sys, k.cfg("ccid"))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Bind("auto"); !errors.Is(err, ErrUDCBusy) || !strings.Contains(err.Error(), `gadget "other"`) {
			t.Fatalf("Bind: %v", err)
		}
	})
}

func TestCrashLeftoverAndDown(t *testing.T) {
	k := newFakeKernel(t, "dummy_udc.0")
	k.ready = true
	c := k.cfg("ccid")
	g, err := Create(k.sys, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Bind("auto"); err != nil {
		t.Fatal(err)
	}
	// The daemon "crashes": nothing is removed. A new Create refuses, and says what to do.
	_, err = Create(k.sys, c)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "ccid-gadget down") {
		t.Fatalf("Create over leftover: %v", err)
	}
	// While a daemon still holds the mount, down says so and keeps the gadget.
	k.held = true
	if err := Remove(k.sys, c.Name, c.MountDir); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove while held: %v", err)
	}
	k.held = false
	if err := Remove(k.sys, c.Name, c.MountDir); err != nil {
		t.Fatal(err)
	}
	if err := Remove(k.sys, c.Name, c.MountDir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove again: %v, want ErrNotFound", err)
	}
	k.ready = false
	g, err = Create(k.sys, c)
	if err != nil {
		t.Fatalf("Create after down: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestRemovePartial(t *testing.T) {
	// A crash during Create: gadget and strings made, no config, no mount.
	k := newFakeKernel(t, "dummy_udc.0")
	dir := filepath.Join(k.sys.Root, "usb_gadget", "ccid")
	for _, d := range []string{dir, dir + "/strings/0x409", dir + "/configs/c.1"} {
		if err := k.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := Remove(k.sys, "ccid", filepath.Join(t.TempDir(), "none")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("gadget still there")
	}
}

func TestInspect(t *testing.T) {
	k := newFakeKernel(t, "dummy_udc.0")
	st, err := Inspect(k.sys, "ccid")
	if err != nil || st.Exists {
		t.Fatalf("Inspect of nothing: %+v, %v", st, err)
	}
	g, _ := Create(k.sys, k.cfg("ccid"))
	k.ready = true
	st, _ = Inspect(k.sys, "ccid")
	if !st.Exists || st.UDC != "" || st.Connected || st.VendorID != "0x1209" || st.ProductID != "0x0001" {
		t.Fatalf("unbound: %+v", st)
	}
	if err := g.Bind("auto"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		state                 string
		connected, configured bool
	}{{"not attached", false, false}, {"addressed", true, false}, {"configured", true, true}, {"suspended", true, false}} {
		k.addUDC(filepath.Join(k.sys.UDCDir, "dummy_udc.0"), tt.state)
		st, _ = Inspect(k.sys, "ccid")
		if st.UDC != "dummy_udc.0" || st.UDCState != tt.state || st.Connected != tt.connected || st.Configured != tt.configured {
			t.Errorf("state %q: %+v", tt.state, st)
		}
	}
}
