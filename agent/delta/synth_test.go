package delta

import (
	"encoding/binary"
	"math/rand/v2"
)

// synthPair returns an old image of about size bytes and a new one that differs from it the way a
// recompiled binary does: a few functions are added, removed or edited, so everything after each change
// moves, and the 4-byte relative offsets embedded in the code change with it: calls between functions
// (x86 call rel32) and references into the read-only data section of strings and constants after the
// code (lea rip+disp32), which change whenever the code before them grows or shrinks. The same seed gives the same pair.
func synthPair(seed uint64, size int) (oldImg, newImg []byte) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	// Instruction-like tokens, drawn with a skew, so the code compresses roughly as real code does.
	vocab := make([][]byte, 256)
	for i := range vocab {
		vocab[i] = make([]byte, 1+r.IntN(7))
		for j := range vocab[i] {
			vocab[i][j] = byte(r.IntN(256))
		}
	}
	token := func() []byte { return vocab[min(r.IntN(256), r.IntN(256))] }

	codeSize := size * 7 / 10
	dataSize := size - codeSize
	// A function's calls are placeholders until its targets are chosen from the whole program.
	newFunc := func() *function {
		f := &function{}
		for n := 16 + r.IntN(600); len(f.body) < n; {
			switch r.IntN(24) {
			case 0:
				f.calls = append(f.calls, call{at: len(f.body)})
				f.body = append(f.body, 0xe8, 0, 0, 0, 0) // call rel32, filled in by layout
				continue
			case 1:
				f.refs = append(f.refs, ref{at: len(f.body), data: r.IntN(dataSize)})
				f.body = append(f.body, 0x8d, 0, 0, 0, 0) // lea rip+disp32, filled in by layout
				continue
			}
			f.body = append(f.body, token()...)
		}
		return f
	}
	link := func(f *function, funcs []*function) {
		for i := range f.calls {
			f.calls[i].target = funcs[r.IntN(len(funcs))]
		}
	}

	var funcs []*function
	for total := 0; total < codeSize; {
		f := newFunc()
		funcs = append(funcs, f)
		total += len(f.body)
	}
	for _, f := range funcs {
		link(f, funcs)
	}
	data := make([]byte, 0, dataSize)
	for len(data) < dataSize {
		if r.IntN(3) == 0 {
			data = binary.LittleEndian.AppendUint64(data, r.Uint64()>>uint(r.IntN(64)))
			continue
		}
		for range 4 + r.IntN(40) {
			data = append(data, byte('a'+r.IntN(26)))
		}
		data = append(data, 0)
	}
	oldImg = layout(funcs, data)

	// The next release: edit ~2% of functions, remove ~0.5%, add ~1% (new ones at random places),
	// and change a few constants.
	// Functions are edited in place: the old image is already laid out.
	next := make([]*function, 0, len(funcs)+len(funcs)/50)
	for _, f := range funcs {
		switch x := r.IntN(1000); {
		case x < 5:
			// Removed: its callers now call the function that takes its place.
			f.body, f.calls, f.refs = nil, nil, nil
		case x < 25:
			// Edited: new code inserted at an instruction boundary (here: before a call or at the end).
			add := newFunc()
			link(add, funcs)
			at := len(f.body)
			if len(f.calls) > 0 {
				at = f.calls[r.IntN(len(f.calls))].at
			}
			body := append(append(append([]byte(nil), f.body[:at]...), add.body...), f.body[at:]...)
			var refs []ref
			for _, d := range f.refs {
				if d.at >= at {
					d.at += len(add.body)
				}
				refs = append(refs, d)
			}
			for _, d := range add.refs {
				d.at += at
				refs = append(refs, d)
			}
			var calls []call
			for _, c := range f.calls {
				if c.at >= at {
					c.at += len(add.body)
				}
				calls = append(calls, c)
			}
			for _, c := range add.calls {
				c.at += at
				calls = append(calls, c)
			}
			f.body, f.calls, f.refs = body, calls, refs
		}
		next = append(next, f)
		if r.IntN(100) == 0 {
			add := newFunc()
			link(add, funcs)
			next = append(next, add)
		}
	}
	newData := append([]byte(nil), data...)
	for range len(newData) / 4096 {
		newData[r.IntN(len(newData))] ^= byte(1 + r.IntN(255))
	}
	return oldImg, layout(next, newData)
}

type call struct {
	at     int // offset of the call instruction in its function's body
	target *function
}

type ref struct {
	at   int // offset of the instruction in its function's body
	data int // offset of the referenced constant in the data section
}

type function struct {
	body  []byte
	calls []call
	refs  []ref
}

// layout places the functions one after another, fills in every call's offset to its target, and
// appends the data section.
func layout(funcs []*function, data []byte) []byte {
	addr := make(map[*function]int, len(funcs))
	n := 0
	for _, f := range funcs {
		addr[f] = n
		n += len(f.body)
	}
	img := make([]byte, 0, n+len(data))
	for _, f := range funcs {
		img = append(img, f.body...)
	}
	for _, f := range funcs {
		for _, c := range f.calls {
			site := addr[f] + c.at + 1
			binary.LittleEndian.PutUint32(img[site:], uint32(int32(addr[c.target]-(site+4))))
		}
		for _, d := range f.refs {
			site := addr[f] + d.at + 1
			binary.LittleEndian.PutUint32(img[site:], uint32(int32(n+d.data-(site+4))))
		}
	}
	return append(img, data...)
}
