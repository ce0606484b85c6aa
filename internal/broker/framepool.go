package broker

import (
	"math/bits"
	"sync"
)

// framePool recycles request buffers in power-of-two size classes from
// 4 KiB up; buffers are returned to it once their request is dispatched.
// sync.Pool lets the garbage collector drop idle buffers, so a burst of
// large requests does not pin memory.
type framePool struct {
	classes [32]sync.Pool // index k holds buffers of capacity 1<<k
}

const minFrameClass = 12

func frameClass(n int) int {
	k := bits.Len(uint(n - 1))
	if k < minFrameClass {
		k = minFrameClass
	}
	return k
}

func (fp *framePool) get(n int) []byte {
	k := frameClass(n)
	if k >= len(fp.classes) {
		return make([]byte, n)
	}
	if v, ok := fp.classes[k].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, 1<<k)
}

func (fp *framePool) put(b []byte) {
	k := frameClass(cap(b))
	if k >= len(fp.classes) || cap(b) != 1<<k {
		return
	}
	b = b[:cap(b)]
	fp.classes[k].Put(&b)
}
