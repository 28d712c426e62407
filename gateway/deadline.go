package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// newEngineCtx is engineCtx for the hot routes: one allocation, and no
// timer of its own even when somebody waits on Done.
func (s *Server) newEngineCtx(rc *fasthttp.RequestCtx) *lazyDeadline {
	return s.newEngineCtxAt(rc, time.Now())
}

// newEngineCtxAt is newEngineCtx for a caller that has just read the clock
// (the hot route times its engine call from the same reading).
func (s *Server) newEngineCtxAt(rc *fasthttp.RequestCtx, now time.Time) *lazyDeadline {
	c := &lazyDeadline{deadline: now.Add(s.o.EngineTimeout), list: &s.deadlines}
	c.ridLen = uint8(copy(c.rid[:], rc.Response.Header.PeekBytes(headerRequestID)))
	return c
}

// lazyDeadline is a context that ends at deadline (or when cancelled).
// The memory and Pebble backends read Err at most, which only compares
// the clock. A caller that waits on Done (the Redis backend's batcher)
// gets a channel that its list closes at the deadline: one runtime timer
// serves all the contexts of a server, where a context.WithTimeout per
// request would cost a timer-heap insertion and removal and four
// allocations (about 1.5 µs of a Redis reserve's CPU, measured).
type lazyDeadline struct {
	deadline time.Time
	// list ends the context at its deadline once Done was called; nil
	// means orphans (a context made outside a server, in tests).
	list *deadlineList

	mu     sync.Mutex
	done   chan struct{} // made by Done; closed when err is set
	err    error         // context.Canceled or context.DeadlineExceeded once ended
	afters []*afterFunc  // run when the context ends (AfterFunc)

	// Guarded by list.mu: the context's place in list, while linked.
	prev, next *lazyDeadline
	linked     bool

	// rid is the request id (X-Request-Id), for the engine's log lines
	// (engine.RequestIDKey); copied, not converted, so that a request
	// whose engine call logs nothing makes no string of it.
	rid    [ridLenMax]byte
	ridLen uint8
}

// afterFunc is one function registered by AfterFunc.
type afterFunc struct{ f func() }

var _ context.Context = (*lazyDeadline)(nil)

// orphans is the list of contexts made without a server.
var orphans deadlineList

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// Value knows only the request id. A context derived from this one
// (context.WithTimeout in a risk hook, say) hangs itself on AfterFunc
// instead of starting a goroutine to watch Done.
func (c *lazyDeadline) Value(key any) any {
	if _, ok := key.(engine.RequestIDKey); ok {
		return string(c.rid[:c.ridLen])
	}
	return nil
}

func (c *lazyDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else {
			// Past its deadline already, it is first in the list and
			// the timer fires at once: no clock read here.
			c.deadlines().add(c)
		}
	}
	return c.done
}

// Err is the reason Done was closed. Before anybody asked for Done, it
// reads the clock instead.
func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	err, waited := c.err, c.done != nil
	c.mu.Unlock()
	if err != nil || waited || time.Now().Before(c.deadline) {
		return err
	}
	return context.DeadlineExceeded
}

// AfterFunc runs f in its own goroutine once the context ends; stop
// unregisters f and reports whether it did so before f was started. With
// it, context.WithCancel and WithTimeout of this context start no
// goroutine (see context.AfterFunc).
func (c *lazyDeadline) AfterFunc(f func()) (stop func() bool) {
	c.Done()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.afters, a)
		if i < 0 {
			return false
		}
		c.afters = slices.Delete(c.afters, i, i+1)
		return true
	}
}

// cancel ends the context (if it has not ended) and takes it off its list.
func (c *lazyDeadline) cancel() {
	if c.end(context.Canceled) {
		c.deadlines().remove(c)
	}
}

// deadlines is the list c goes into when waited on.
func (c *lazyDeadline) deadlines() *deadlineList {
	if c.list == nil {
		return &orphans
	}
	return c.list
}

// end ends the context with err unless it has ended, and reports whether
// it did.
func (c *lazyDeadline) end(err error) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, a := range afters {
		go a.f()
	}
	return true
}

// deadlineList holds the contexts that wait on Done, in deadline order,
// and ends each at its deadline with one runtime timer, armed for the
// earliest. The contexts of one server share a timeout, so a new one
// belongs at (or next to) the tail, and the one that ends next (the
// request that has waited longest) is at the head. Taking a context off
// does not rearm the timer: a timer that finds nothing due rearms itself
// for the head, about once per timeout under a steady load.
type deadlineList struct {
	mu         sync.Mutex
	head, tail *lazyDeadline
	timer      *time.Timer
	armed      time.Time // when the timer fires; zero when it is not armed
}

// add links c, which is not linked, at its place. Called once per context.
func (l *deadlineList) add(c *lazyDeadline) {
	l.mu.Lock()
	p := l.tail
	for p != nil && p.deadline.After(c.deadline) {
		p = p.prev
	}
	c.prev = p
	if p == nil {
		c.next, l.head = l.head, c
	} else {
		c.next, p.next = p.next, c
	}
	if c.next == nil {
		l.tail = c
	} else {
		c.next.prev = c
	}
	c.linked = true
	if l.armed.IsZero() || c.deadline.Before(l.armed) {
		l.armLocked(c.deadline)
	}
	l.mu.Unlock()
}

// remove unlinks c if it is linked.
func (l *deadlineList) remove(c *lazyDeadline) {
	l.mu.Lock()
	if c.linked {
		if c.prev == nil {
			l.head = c.next
		} else {
			c.prev.next = c.next
		}
		if c.next == nil {
			l.tail = c.prev
		} else {
			c.next.prev = c.prev
		}
		c.prev, c.next, c.linked = nil, nil, false
	}
	l.mu.Unlock()
}

// armLocked sets the timer to fire at t. Requires mu.
func (l *deadlineList) armLocked(t time.Time) {
	l.armed = t
	if l.timer == nil {
		l.timer = time.AfterFunc(time.Until(t), l.fire)
		return
	}
	l.timer.Reset(time.Until(t))
}

// fire ends the contexts whose deadlines have passed and rearms the timer
// for the next one.
func (l *deadlineList) fire() {
	now := time.Now()
	l.mu.Lock()
	var due []*lazyDeadline
	for c := l.head; c != nil && !c.deadline.After(now); c = l.head {
		l.head = c.next
		c.prev, c.next, c.linked = nil, nil, false
		due = append(due, c)
	}
	if l.head == nil {
		l.tail = nil
		l.armed = time.Time{}
	} else {
		l.head.prev = nil
		l.armLocked(l.head.deadline)
	}
	l.mu.Unlock()
	for _, c := range due {
		c.end(context.DeadlineExceeded)
	}
}
