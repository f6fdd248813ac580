//go:build cgo

package main

/*
#cgo pkg-config: libusb-1.0
#include <libusb.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/gousb"

	"github.com/ccidgadget/ccidgadget/probe"
)

func init() { newBackend = newUSBBackend }

// usbBackend finds CCID interfaces with libusb through gousb.
type usbBackend struct{ ctx *gousb.Context }

func newUSBBackend() (backend, error) {
	return &usbBackend{ctx: gousb.NewContext()}, nil
}

func (b *usbBackend) Close() error { return b.ctx.Close() }

// mayBeCCID reports whether a device has an interface of class 0x0B or 0xFF (which needs its raw descriptors
// to decide).
func mayBeCCID(desc *gousb.DeviceDesc) bool {
	for _, c := range desc.Configs {
		for _, i := range c.Interfaces {
			for _, a := range i.AltSettings {
				if a.Class == gousb.ClassSmartCard || a.Class == gousb.ClassVendorSpec {
					return true
				}
			}
		}
	}
	return false
}

// candidates opens every device that may hold a CCID interface and that the selector picks by VID:PID.
func (b *usbBackend) candidates(sel probe.Selector) ([]*gousb.Device, error) {
	return b.ctx.OpenDevices(func(desc *gousb.DeviceDesc) bool {
		if sel.HasID && (uint16(desc.Vendor) != sel.VendorID || uint16(desc.Product) != sel.ProductID) {
			return false
		}
		return mayBeCCID(desc)
	})
}

func (b *usbBackend) List(sel probe.Selector) ([]probe.Info, []error, error) {
	devs, err := b.candidates(sel)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("some USB devices could not be opened (run as root?): %w", err))
	}
	var infos []probe.Info
	for _, d := range devs {
		is, err := describe(d)
		d.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, i := range is {
			if sel.Match(i.VendorID, i.ProductID, i.Serial) {
				infos = append(infos, i)
			}
		}
	}
	return infos, errs, nil
}

// describe reads the active configuration's raw descriptors (GET_DESCRIPTOR, as libusb's extra bytes come
// from them) and the strings, and returns one Info per CCID interface (alternate setting 0).
func describe(d *gousb.Device) ([]probe.Info, error) {
	cfgNum, err := d.ActiveConfigNum()
	if err != nil {
		return nil, fmt.Errorf("%s: active configuration: %w", d, err)
	}
	raw, err := rawConfig(d, cfgNum)
	if err != nil {
		return nil, err
	}
	cfg, err := probe.ParseConfiguration(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	base := probe.Info{Bus: d.Desc.Bus, Address: d.Desc.Address, VendorID: uint16(d.Desc.Vendor),
		ProductID: uint16(d.Desc.Product), BcdDevice: uint16(d.Desc.Device), Speed: d.Desc.Speed.String(),
		Config: byte(cfgNum)}
	base.Manufacturer, _ = d.Manufacturer()
	base.Product, _ = d.Product()
	base.Serial, _ = d.SerialNumber()
	var out []probe.Info
	for _, i := range cfg.Interfaces {
		if i.Alternate != 0 || !i.IsCCID() {
			continue
		}
		info := base
		info.Interface = i
		if i.StringIndex != 0 {
			info.InterfaceName, _ = d.GetStringDescriptor(int(i.StringIndex))
		}
		out = append(out, info)
	}
	return out, nil
}

// rawConfig reads the configuration descriptor whose bConfigurationValue is cfgNum, with all it contains.
func rawConfig(d *gousb.Device, cfgNum int) ([]byte, error) {
	for idx := 0; idx < len(d.Desc.Configs); idx++ {
		head := make([]byte, 9)
		n, err := d.Control(0x80, 0x06, 0x0200|uint16(idx), 0, head)
		if err != nil || n < 9 {
			return nil, fmt.Errorf("%s: GET_DESCRIPTOR(CONFIGURATION %d): %d bytes, %v", d, idx, n, err)
		}
		if int(head[5]) != cfgNum {
			continue
		}
		total := int(head[2]) | int(head[3])<<8
		buf := make([]byte, total)
		n, err = d.Control(0x80, 0x06, 0x0200|uint16(idx), 0, buf)
		if err != nil {
			return nil, fmt.Errorf("%s: GET_DESCRIPTOR(CONFIGURATION %d): %w", d, idx, err)
		}
		return buf[:n], nil
	}
	return nil, fmt.Errorf("%s: no configuration descriptor with bConfigurationValue %d", d, cfgNum)
}

func (b *usbBackend) Open(sel probe.Selector) (device, error) {
	devs, err := b.candidates(sel)
	if err != nil && len(devs) == 0 {
		return nil, fmt.Errorf("open USB devices (run as root?): %w", err)
	}
	type found struct {
		dev  *gousb.Device
		info probe.Info
	}
	var all []found
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, d := range devs {
		is, err := describe(d)
		if err != nil {
			problems = append(problems, err.Error())
		} else {
			for _, i := range is {
				if sel.Match(i.VendorID, i.ProductID, i.Serial) {
					all = append(all, found{d, i})
				}
			}
		}
	}
	var pick *found
	if len(all) > 0 {
		pick = &all[0]
	}
	for _, d := range devs {
		if pick == nil || d != pick.dev {
			d.Close()
		}
	}
	switch {
	case len(all) == 0 && len(problems) > 0:
		return nil, fmt.Errorf("no CCID reader found; problems: %s", strings.Join(problems, "; "))
	case len(all) == 0:
		return nil, errors.New("no CCID reader found (see ccid-probe list; give --device VID:PID)")
	case len(all) > 1:
		var ids []string
		for _, f := range all {
			ids = append(ids, f.info.ID())
		}
		if pick.dev != nil {
			pick.dev.Close()
		}
		return nil, fmt.Errorf("%d CCID interfaces found (%s): choose one with --device", len(all), strings.Join(ids, ", "))
	}
	return claim(pick.dev, pick.info)
}

// usbDevice is probe.Device over a claimed gousb interface.
type usbDevice struct {
	dev   *gousb.Device
	cfg   *gousb.Config
	intf  *gousb.Interface
	info  probe.Info
	in    *gousb.InEndpoint
	out   *gousb.OutEndpoint
	intr  *gousb.InEndpoint
	inMax int
}

func claim(d *gousb.Device, info probe.Info) (device, error) {
	fail := func(err error) (device, error) {
		d.Close()
		return nil, err
	}
	cfg, err := d.Config(int(info.Config))
	if err != nil {
		return fail(fmt.Errorf("%s: configuration %d: %w", info.ID(), info.Config, err))
	}
	intf, err := cfg.Interface(int(info.Interface.Number), 0)
	if err != nil {
		cfg.Close()
		if strings.Contains(err.Error(), fmt.Sprintf("[code %d]", int(gousb.ErrorBusy))) {
			return fail(fmt.Errorf("%s interface %d: %w", info.ID(), info.Interface.Number, probe.ErrBusy))
		}
		return fail(fmt.Errorf("%s: claim interface %d: %w", info.ID(), info.Interface.Number, err))
	}
	u := &usbDevice{dev: d, cfg: cfg, intf: intf, info: info}
	closeAll := func(err error) (device, error) {
		intf.Close()
		cfg.Close()
		return fail(err)
	}
	for _, ep := range info.Interface.Endpoints {
		num := int(ep.Address & 0x0F)
		switch {
		case ep.Type() == probe.TransferBulk && ep.In():
			u.in, err = intf.InEndpoint(num)
			u.inMax = int(ep.MaxPacketSize)
		case ep.Type() == probe.TransferBulk:
			u.out, err = intf.OutEndpoint(num)
		case ep.Type() == probe.TransferInterrupt && ep.In():
			u.intr, err = intf.InEndpoint(num)
		}
		if err != nil {
			return closeAll(fmt.Errorf("%s: endpoint 0x%02X: %w", info.ID(), ep.Address, err))
		}
	}
	if u.in == nil || u.out == nil {
		return closeAll(fmt.Errorf("%s: interface %d has no bulk IN and OUT endpoints", info.ID(), info.Interface.Number))
	}
	return u, nil
}

func (u *usbDevice) Info() probe.Info { return u.info }

func (u *usbDevice) Close() error {
	u.intf.Close()
	err := u.cfg.Close()
	if e := u.dev.Close(); err == nil {
		err = e
	}
	return err
}

// mapErr turns libusb results into the errors probe branches on.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var st gousb.TransferStatus
	if errors.As(err, &st) {
		switch st {
		case gousb.TransferCancelled, gousb.TransferTimedOut:
			if ctx.Err() != nil || st == gousb.TransferTimedOut {
				return fmt.Errorf("%w (%v)", probe.ErrTimeout, err)
			}
		case gousb.TransferStall:
			return fmt.Errorf("%w (%v)", probe.ErrStall, err)
		case gousb.TransferOverflow:
			return fmt.Errorf("%w (%v)", probe.ErrOverflow, err)
		}
	}
	var e gousb.Error
	if errors.As(err, &e) {
		switch e {
		case gousb.ErrorTimeout:
			return fmt.Errorf("%w (%v)", probe.ErrTimeout, err)
		case gousb.ErrorPipe:
			return fmt.Errorf("%w (%v)", probe.ErrStall, err)
		case gousb.ErrorOverflow:
			return fmt.Errorf("%w (%v)", probe.ErrOverflow, err)
		case gousb.ErrorBusy:
			return fmt.Errorf("%w (%v)", probe.ErrBusy, err)
		}
	}
	return err
}

func (u *usbDevice) BulkOut(ctx context.Context, p []byte) error {
	n, err := u.out.WriteContext(ctx, p)
	if err == nil && n != len(p) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(p))
	}
	return mapErr(ctx, err)
}

func (u *usbDevice) BulkIn(ctx context.Context, p []byte) (int, error) {
	n, err := u.in.ReadContext(ctx, p)
	return n, mapErr(ctx, err)
}

func (u *usbDevice) InterruptIn(ctx context.Context, p []byte) (int, error) {
	if u.intr == nil {
		return 0, errors.New("no interrupt endpoint")
	}
	n, err := u.intr.ReadContext(ctx, p)
	return n, mapErr(ctx, err)
}

func (u *usbDevice) Control(ctx context.Context, rt, req byte, value, index uint16, data []byte) (int, error) {
	u.dev.ControlTimeout = time.Second
	if dl, ok := ctx.Deadline(); ok {
		u.dev.ControlTimeout = max(time.Until(dl), time.Millisecond)
	}
	n, err := u.dev.Control(rt, req, value, index, data)
	return n, mapErr(ctx, err)
}

// ClearHalt calls libusb_clear_halt on gousb's device handle: gousb v1.1.3 does not export it, and a raw
// CLEAR_FEATURE control request would leave the host's data toggle where it was.
func (u *usbDevice) ClearHalt(ctx context.Context, ep byte) error {
	h := reflect.ValueOf(u.dev).Elem().FieldByName("handle")
	if !h.IsValid() || h.Kind() != reflect.Pointer || h.IsNil() {
		return errors.New("clear halt: gousb's device handle not found")
	}
	rc := C.libusb_clear_halt((*C.libusb_device_handle)(h.UnsafePointer()), C.uchar(ep))
	if rc != 0 {
		return mapErr(ctx, gousb.Error(rc))
	}
	return nil
}
