package growbuf

import (
	"errors"
	"sync"
	"testing"
)

// Readers each get every byte once, in order, at their own pace, and the
// way the Buffer ended; nothing appended after the end is seen.
func TestBuffer(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"complete", nil},
		{"failed", errors.New("upstream gone")},
	} {
		b := New(4)
		chunks := []string{"ab", "cde", "", "fghij"}
		var wg sync.WaitGroup
		got := make([]string, 3)
		errs := make([]error, 3)
		for i := range got {
			wg.Go(func() {
				off := 0
				for {
					p, over, err, more := b.Next(off)
					if over {
						errs[i] = err
						return
					}
					got[i] += string(p)
					off += len(p)
					if len(p) == 0 {
						<-more
					}
				}
			})
		}
		for _, c := range chunks {
			b.Append([]byte(c))
		}
		b.Finish(tc.err)
		b.Finish(errors.New("too late"))
		b.Append([]byte("after the end"))
		wg.Wait()
		for i := range got {
			if got[i] != "abcdefghij" || !errors.Is(errs[i], tc.err) || (tc.err == nil) != (errs[i] == nil) {
				t.Errorf("%s: reader %d got %q, %v", tc.name, i, got[i], errs[i])
			}
		}
		content, ok := b.Bytes()
		if ok != (tc.err == nil) || ok && string(content) != "abcdefghij" || !b.Over() {
			t.Errorf("%s: Bytes %q %v, Over %v", tc.name, content, ok, b.Over())
		}
	}
}

// A prefix a reader holds stays as it was when later appends move the
// content to a bigger array.
func TestPrefixesStay(t *testing.T) {
	b := New(1)
	b.Append([]byte("abc"))
	p, _, _, _ := b.Next(0)
	for range 100 {
		b.Append([]byte("0123456789"))
	}
	if string(p) != "abc" || cap(p) != 3 {
		t.Errorf("held prefix %q (cap %d)", p, cap(p))
	}
}

// Extend takes a longer prefix of an array without copying it.
func TestExtend(t *testing.T) {
	array := []byte("abcdef")
	b := New(0)
	b.Extend(array[:2])
	p, _, _, _ := b.Next(0)
	b.Extend(array[:5])
	q, _, _, _ := b.Next(2)
	if string(p) != "ab" || string(q) != "cde" || &q[0] != &array[2] {
		t.Errorf("read %q then %q, copied: %v", p, q, &q[0] != &array[2])
	}
	b.Finish(nil)
	b.Extend(array)
	if all, ok := b.Bytes(); !ok || string(all) != "abcde" {
		t.Errorf("content %q %v after the end", all, ok)
	}
}
