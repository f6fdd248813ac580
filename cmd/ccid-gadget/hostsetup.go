package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// defaultPlist is Debian's copy of libccid's ifd-ccid.bundle/Contents/Info.plist.
const defaultPlist = "/etc/libccid_Info.plist"

// runHostSetup is `ccid-gadget host-setup`: on the host the gadget plugs into, list the gadget's VID:PID in
// libccid's Info.plist so pcscd hands the device to libccid (pcscd matches USB readers by VID:PID only).
func runHostSetup(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("host-setup", "host-setup [--plist PATH] [--vid 0x1209] [--pid 0x0001] [--name NAME]", stdout)
	plist := fs.String("plist", defaultPlist, "libccid's Info.plist `file`")
	vidFlag := fs.String("vid", "0x1209", "USB vendor `id` of the gadget")
	pidFlag := fs.String("pid", "0x0001", "USB product `id` of the gadget")
	name := fs.String("name", "ccidgadget OpenPGP reader", "reader `name` pcscd shows (ifdFriendlyName)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	vid, err := parseUSBID("vid", *vidFlag)
	if err != nil {
		return err
	}
	pid, err := parseUSBID("pid", *pidFlag)
	if err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("%w: --name is empty", errUsage)
	}
	res, err := addToPlist(*plist, vid, pid, *name)
	if err != nil {
		return err
	}
	if res.existing != "" {
		fmt.Fprintf(stdout, "%s already lists 0x%04X:0x%04X (%q, index %d); nothing to do\n", *plist, vid, pid, res.existing, res.index)
		return nil
	}
	fmt.Fprintf(stdout, "added 0x%04X:0x%04X %q to %s (index %d; previous file saved as %s)\n", vid, pid, *name, *plist, res.index, res.backup)
	fmt.Fprintln(stdout, "restart pcscd to use it: systemctl restart pcscd")
	return nil
}

// parseUSBID parses a 16-bit id written 0x1209 or 1209 (hex either way, as lsusb prints it).
func parseUSBID(flag, s string) (uint16, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(t, 16, 16)
	if err != nil || t == "" {
		return 0, fmt.Errorf("%w: --%s %q is not a 16-bit hex id like 0x1209", errUsage, flag, s)
	}
	return uint16(v), nil
}

type plistResult struct {
	index    int    // index of the entry in the three arrays
	existing string // the friendly name when the VID:PID was already listed
	backup   string
}

// plistArray is one of libccid's parallel arrays: where its entries are and what they say.
type plistArray struct {
	key     string
	values  []string
	closeAt int    // offset of the line holding </array>
	indent  string // indentation of the entries
}

var stringRE = regexp.MustCompile(`<string>([^<]*)</string>`)

func findArray(doc []byte, key string) (plistArray, error) {
	a := plistArray{key: key, indent: "\t\t"}
	k := bytes.Index(doc, []byte("<key>"+key+"</key>"))
	if k < 0 {
		return a, fmt.Errorf("no <key>%s</key>", key)
	}
	rest := doc[k:]
	open := bytes.Index(rest, []byte("<array>"))
	end := bytes.Index(rest, []byte("</array>"))
	if open < 0 || end < open || bytes.Contains(rest[len("<key>"+key+"</key>"):open], []byte("<")) {
		return a, fmt.Errorf("<key>%s</key> is not followed by an <array>", key)
	}
	body := rest[open+len("<array>") : end]
	for _, m := range stringRE.FindAllSubmatch(body, -1) {
		a.values = append(a.values, unescapeXML(string(m[1])))
	}
	lineStart := bytes.LastIndexByte(rest[:end], '\n') + 1
	a.closeAt = k + lineStart
	if i := bytes.Index(body, []byte("<string>")); i >= 0 {
		ls := bytes.LastIndexByte(body[:i], '\n') + 1
		a.indent = string(body[ls:i])
	}
	return a, nil
}

// unescapeXML undoes the XML escapes a plist string may hold.
func unescapeXML(s string) string {
	var out strings.Builder
	d := xml.NewDecoder(strings.NewReader("<s>" + s + "</s>"))
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if cd, ok := tok.(xml.CharData); ok {
			out.Write(cd)
		}
	}
	return out.String()
}

// addToPlist appends vid, pid and name at the same new index of ifdVendorID, ifdProductID and ifdFriendlyName,
// leaving every other byte of the file as it was. It writes a backup of the previous file first, then replaces
// the file atomically. Nothing is written when the VID:PID is already listed.
func addToPlist(path string, vid, pid uint16, name string) (plistResult, error) {
	var res plistResult
	doc, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("%s does not exist: is libccid installed? (apt install libccid)", path)
		}
		return res, explainFS(err)
	}
	arrays := make([]plistArray, 3)
	for i, key := range []string{"ifdVendorID", "ifdProductID", "ifdFriendlyName"} {
		if arrays[i], err = findArray(doc, key); err != nil {
			return res, fmt.Errorf("%s: not a libccid Info.plist: %v", path, err)
		}
	}
	n := len(arrays[0].values)
	if len(arrays[1].values) != n || len(arrays[2].values) != n {
		return res, fmt.Errorf("%s: ifdVendorID, ifdProductID and ifdFriendlyName have %d, %d and %d entries; pcscd rejects such a file, fix it first",
			path, n, len(arrays[1].values), len(arrays[2].values))
	}
	for i := range n {
		v, verr := parseUSBID("vid", arrays[0].values[i])
		p, perr := parseUSBID("pid", arrays[1].values[i])
		if verr == nil && perr == nil && v == vid && p == pid {
			res.index, res.existing = i, arrays[2].values[i]
			return res, nil
		}
	}
	var esc bytes.Buffer
	xml.EscapeText(&esc, []byte(name))
	entries := []string{fmt.Sprintf("0x%04X", vid), fmt.Sprintf("0x%04X", pid), esc.String()}
	var out bytes.Buffer
	last := 0
	for i, a := range arrays { // the arrays appear in file order: vendor, product, name
		if a.closeAt < last {
			return res, fmt.Errorf("%s: unexpected order of the ifd arrays", path)
		}
		out.Write(doc[last:a.closeAt])
		fmt.Fprintf(&out, "%s<string>%s</string>\n", a.indent, entries[i])
		last = a.closeAt
	}
	out.Write(doc[last:])
	if err := xml.Unmarshal(out.Bytes(), new(struct{})); err != nil {
		return res, fmt.Errorf("%s: edited file would not be valid XML: %v", path, err)
	}

	info, err := os.Stat(path)
	if err != nil {
		return res, explainFS(err)
	}
	res.index, res.backup = n, path+".bak"
	if err := writeFileAtomic(res.backup, doc, info.Mode().Perm()); err != nil {
		return res, fmt.Errorf("write backup: %w", explainFS(err))
	}
	if err := writeFileAtomic(path, out.Bytes(), info.Mode().Perm()); err != nil {
		return res, fmt.Errorf("write %s: %w", path, explainFS(err))
	}
	return res, nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(perm)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
