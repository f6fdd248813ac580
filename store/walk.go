package store

import (
	"encoding/binary"
	"fmt"
)

// bbolt's page layout (go.etcd.io/bbolt internal/common/page.go), enough to walk the tree before bbolt maps the
// file. bbolt trusts every offset it reads: a flipped byte in a page header or element can make it build a
// slice over memory that is not the file, which Go's garbage collector may then find ("found pointer to free
// object") and abort the process, something no recover can catch. walkBolt reads the file's bytes with bounds
// checks instead, so such a file is refused with ErrCorrupt.
const (
	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01 // leaf element flag: the value is a bucket header
	boltElementSize  = 16   // branchPageElement and leafPageElement
	boltBucketHeader = 16   // root pgid, sequence
	boltMaxDepth     = 64
)

// maxWalkBytes bounds the file walkBolt reads into memory; a card's state is a few hundred KiB at most.
const maxWalkBytes = 256 << 20

// boltWalker checks the pages reachable from a meta page.
type boltWalker struct {
	data []byte
	m    boltMeta
	seen map[uint64]bool
}

// walkBolt checks that every page reachable from m's root bucket and its freelist lies within the file and
// within the high water mark, is visited once, has the type its parent expects, and that every element, key and
// value lies within its page (inline buckets within their value).
func walkBolt(data []byte, m boltMeta) error {
	w := &boltWalker{data: data, m: m, seen: map[uint64]bool{}}
	if m.freelist != ^uint64(0) {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	return w.tree(m.root, 0)
}

// page returns page id with its overflow pages, after checking its header.
func (w *boltWalker) page(id uint64) (p []byte, flags uint16, count int, err error) {
	ps := uint64(w.m.pageSize)
	if id < 2 || id >= w.m.pgid {
		return nil, 0, 0, corrupt("page %d outside [2, %d)", id, w.m.pgid)
	}
	if w.seen[id] {
		return nil, 0, 0, corrupt("page %d reached twice", id)
	}
	w.seen[id] = true
	off := id * ps
	if off+pageHeaderSize > uint64(len(w.data)) {
		return nil, 0, 0, corrupt("page %d past the end of the file", id)
	}
	ne := binary.NativeEndian
	h := w.data[off:]
	if got := ne.Uint64(h); got != id {
		return nil, 0, 0, corrupt("page %d says it is page %d", id, got)
	}
	flags, count = ne.Uint16(h[8:]), int(ne.Uint16(h[10:]))
	overflow := uint64(ne.Uint32(h[12:]))
	if id+overflow+1 > w.m.pgid || (id+overflow+1)*ps > uint64(len(w.data)) {
		return nil, 0, 0, corrupt("page %d with %d overflow pages runs past the file", id, overflow)
	}
	for o := id + 1; o <= id+overflow; o++ {
		if w.seen[o] {
			return nil, 0, 0, corrupt("overflow page %d reached twice", o)
		}
		w.seen[o] = true
	}
	return w.data[off : (id+overflow+1)*ps], flags, count, nil
}

func (w *boltWalker) freelist(id uint64) error {
	p, flags, count, err := w.page(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != boltFreelistPage {
		return corrupt("freelist page %d has flags 0x%02X", id, flags)
	}
	start := uint64(pageHeaderSize)
	n := uint64(count)
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return corrupt("freelist page %d too short for its count", id)
		}
		n = binary.NativeEndian.Uint64(p[pageHeaderSize:])
		start += 8
	}
	if n > (uint64(len(p))-start)/8 {
		return corrupt("freelist page %d lists %d ids, room for %d", id, n, (uint64(len(p))-start)/8)
	}
	for i := range n {
		if free := binary.NativeEndian.Uint64(p[start+8*i:]); free < 2 || free >= w.m.pgid {
			return corrupt("freelist page %d lists page %d outside [2, %d)", id, free, w.m.pgid)
		}
	}
	return nil
}

// tree checks the B+tree of one bucket rooted at page id.
func (w *boltWalker) tree(id uint64, depth int) error {
	if depth > boltMaxDepth {
		return corrupt("bucket tree deeper than %d", boltMaxDepth)
	}
	p, flags, count, err := w.page(id)
	if err != nil {
		return err
	}
	switch flags {
	case boltBranchPage:
		if count == 0 {
			return corrupt("branch page %d has no elements", id)
		}
		if err := elementsFit(p, count, id); err != nil {
			return err
		}
		for i := range count {
			e := pageHeaderSize + i*boltElementSize
			pos, ksize := uint64(binary.NativeEndian.Uint32(p[e:])), uint64(binary.NativeEndian.Uint32(p[e+4:]))
			if uint64(e)+pos+ksize > uint64(len(p)) {
				return corrupt("branch page %d element %d key past the page", id, i)
			}
			if err := w.tree(binary.NativeEndian.Uint64(p[e+8:]), depth+1); err != nil {
				return err
			}
		}
		return nil
	case boltLeafPage:
		return w.leaf(p, count, id, depth)
	}
	return corrupt("page %d in a bucket tree has flags 0x%02X", id, flags)
}

// leaf checks a leaf page (or an inline bucket's page, id 0) and the buckets its elements hold.
func (w *boltWalker) leaf(p []byte, count int, id uint64, depth int) error {
	if err := elementsFit(p, count, id); err != nil {
		return err
	}
	ne := binary.NativeEndian
	for i := range count {
		e := pageHeaderSize + i*boltElementSize
		fl, pos := ne.Uint32(p[e:]), uint64(ne.Uint32(p[e+4:]))
		ksize, vsize := uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		vstart := uint64(e) + pos + ksize
		if vstart+vsize > uint64(len(p)) {
			return corrupt("leaf page %d element %d past the page", id, i)
		}
		if fl&boltBucketLeaf == 0 {
			continue
		}
		v := p[vstart : vstart+vsize]
		if len(v) < boltBucketHeader {
			return corrupt("leaf page %d element %d: bucket header of %d bytes", id, i, len(v))
		}
		if root := ne.Uint64(v); root != 0 {
			if err := w.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[boltBucketHeader:]
		if len(inline) < pageHeaderSize {
			return corrupt("leaf page %d element %d: inline bucket without a page", id, i)
		}
		if ne.Uint16(inline[8:]) != boltLeafPage || ne.Uint32(inline[12:]) != 0 {
			return corrupt("leaf page %d element %d: inline bucket page is not a leaf", id, i)
		}
		if depth+1 > boltMaxDepth {
			return corrupt("bucket tree deeper than %d", boltMaxDepth)
		}
		if err := w.leaf(inline, int(ne.Uint16(inline[10:])), id, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func elementsFit(p []byte, count int, id uint64) error {
	if pageHeaderSize+count*boltElementSize > len(p) {
		return corrupt("page %d: %d elements do not fit", id, count)
	}
	return nil
}
