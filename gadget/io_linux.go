package gadget

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// withSignalsBlocked runs fn, a blocking FunctionFS system call, on a thread that blocks every signal, so the
// kernel never interrupts the transfer (f_fs dequeues an interrupted request and loses its partial data; Go
// itself sends SIGURG for preemption). Process signals such as SIGTERM go to the other threads meanwhile.
func withSignalsBlocked(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		fn()
		return
	}
	fn()
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

// ep0File is ep0 opened through os.File: event reads go through Go's poller (ep0 supports poll), while the
// status stage, stalls and data stages are raw system calls (os.File.Read(nil) would make none).
type ep0File struct {
	f  *os.File
	rc syscall.RawConn
}

func openControl(path string) (control, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("gadget: open %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gadget: %s: %w", path, err)
	}
	return &ep0File{f: f, rc: rc}, nil
}

func (e *ep0File) Read(p []byte) (int, error) {
	if len(p) > 0 {
		return e.f.Read(p)
	}
	return e.raw(func(fd int) (int, error) { return unix.Read(fd, nil) })
}

func (e *ep0File) Write(p []byte) (int, error) {
	return e.raw(func(fd int) (int, error) { return unix.Write(fd, p) })
}

func (e *ep0File) raw(op func(fd int) (int, error)) (n int, err error) {
	cerr := e.rc.Control(func(fd uintptr) {
		withSignalsBlocked(func() { n, err = op(int(fd)) })
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

func (e *ep0File) Close() error { return e.f.Close() }

// epFile is an endpoint file used with raw, blocking system calls: endpoint files have no poll, and os.File
// would retry EINTR (a replayed transfer).
type epFile struct {
	fd   int
	path string
}

func openEndpoint(path string) (endpoint, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("gadget: open %s: %w", path, err)
	}
	return &epFile{fd: fd, path: path}, nil
}

func (e *epFile) Read(p []byte) (n int, err error) {
	withSignalsBlocked(func() { n, err = unix.Read(e.fd, p) })
	if n < 0 {
		n = 0
	}
	return n, err
}

func (e *epFile) Write(p []byte) (n int, err error) {
	withSignalsBlocked(func() { n, err = unix.Write(e.fd, p) })
	if n < 0 {
		n = 0
	}
	return n, err
}

// ioctlEndpointDesc is FUNCTIONFS_ENDPOINT_DESC, _IOR('g', 130, struct usb_endpoint_descriptor): the endpoint
// descriptor for the current speed (9 bytes, the audio-extended size).
const ioctlEndpointDesc = 2<<30 | 9<<16 | 'g'<<8 | 130

func (e *epFile) MaxPacketSize() (int, error) {
	var d [9]byte
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), ioctlEndpointDesc, uintptr(unsafe.Pointer(&d[0]))); errno != 0 {
		return 0, fmt.Errorf("gadget: %s: FUNCTIONFS_ENDPOINT_DESC: %w", e.path, errno)
	}
	return int(uint16(d[4])|uint16(d[5])<<8) & 0x7ff, nil
}

func (e *epFile) Close() error { return unix.Close(e.fd) }
