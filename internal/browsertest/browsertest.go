// Package browsertest runs pages in a headless Chromium for tests, through
// chromedp: it finds the browser, starts it with a bounded lifetime in a
// phone-sized viewport, collects what the page writes to the console
// (errors, uncaught exceptions) and saves screenshots as test artifacts.
//
// Use:
//
//	b := browsertest.New(t, browsertest.Options{})     // skips (or fails) without Chromium
//	b.Do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#store-name")))
//	name := browsertest.Run(b, chromedp.Text(chromedp.CSS("#store-name")))
//	b.Screenshot("store")                              // <artifacts>/<Test>-store.png
//	b.NoConsoleErrors()
//
// Chromium comes from Debian's package (`apt-get install chromium`); the
// binary is looked for as $SURGE_CHROMIUM, then chromium, chromium-browser,
// google-chrome and headless_shell on PATH. Without one, New skips the test
// with a loud log line, or fails it when SURGE_REQUIRE_BROWSER=1 (as CI
// sets). Screenshots go to $SURGE_ARTIFACTS when set, else to the test's
// temporary directory.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Environment variables the rig reads.
const (
	// EnvRequire, set to 1, turns a missing browser into a test failure.
	EnvRequire = "SURGE_REQUIRE_BROWSER"
	// EnvChromium names the browser binary to use.
	EnvChromium = "SURGE_CHROMIUM"
	// EnvArtifacts names the directory screenshots are saved in.
	EnvArtifacts = "SURGE_ARTIFACTS"
)

// messagesMax bounds the console messages kept per browser.
const messagesMax = 1000

// ErrNoBrowser is returned by Find when no Chromium binary is found.
var ErrNoBrowser = errors.New("browsertest: no chromium binary found (apt-get install chromium, or set " + EnvChromium + ")")

// Options configure a browser. The zero value is a 375×812 phone, for 60 s.
type Options struct {
	// Width and Height are the viewport's CSS pixels. Default 375×812
	// (a phone); Mobile emulation is on unless Desktop is set.
	Width, Height int64
	// Desktop turns off mobile emulation (touch, the viewport meta tag).
	Desktop bool
	// Timeout bounds the browser's whole life: every action of the test
	// fails once it has passed. Default 60 s.
	Timeout time.Duration
}

// Find returns the path of a Chromium binary, or ErrNoBrowser.
func Find() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("browsertest: %s=%q: %w", EnvChromium, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// Browser is one tab of a headless Chromium that lives as long as its test.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
	dropped  int
}

// New starts a headless Chromium for t and stops it when t ends. Without
// a browser, it skips t (loudly), or fails it when SURGE_REQUIRE_BROWSER=1.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	path, err := Find()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%v; %s=1 says the browser tests must run", err, EnvRequire)
		}
		t.Log("!!!!!!!!!! SKIPPING BROWSER TEST: " + err.Error() + " !!!!!!!!!!")
		t.Skip("no chromium")
	}
	if o.Width == 0 {
		o.Width = 375
	}
	if o.Height == 0 {
		o.Height = 812
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(o.Width), int(o.Height)),
		chromedp.Flag("lang", "zh-CN"),
	)
	base, cancelTimeout := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	b := &Browser{t: t, ctx: ctx, dir: artifactsDir(t)}
	// Starts the browser and subscribes to the console before the first
	// navigation, so that no message is lost.
	messages := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			if len(b.messages) < messagesMax {
				b.messages = append(b.messages, m)
			} else {
				b.dropped++
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		cancelTimeout()
		wg.Wait()
	})
	if o.Desktop {
		b.Do(chromedp.EmulateViewport(o.Width, o.Height))
	} else {
		b.Do(chromedp.EmulateViewport(o.Width, o.Height, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	}
	return b
}

// Context is the chromedp context of the tab, for chromedp calls the rig
// does not wrap.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs actions in the tab and fails the test on the first error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v%s", err, b.consoleNote())
	}
}

// Run runs one action that returns a value and fails the test on error.
func Run[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v%s", err, b.consoleNote())
	}
	return v
}

// Eval evaluates a JavaScript expression and decodes its value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	return Run(b, chromedp.Evaluate[T](expr))
}

// Messages returns the console messages so far: console API calls,
// uncaught exceptions and browser log entries.
func (b *Browser) Messages() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.messages...)
}

// ConsoleErrors returns what the page did wrong: console.error calls,
// uncaught exceptions and unhandled rejections, and browser log errors
// other than the network's (a fetch answered 4xx is logged by Chromium as
// a network error, yet it is an answer the page handles).
func (b *Browser) ConsoleErrors() []string {
	var out []string
	for _, m := range b.Messages() {
		switch {
		case m.IsException(), m.Type == chromedp.ConsoleError && m.Source != "network":
			s := m.String()
			if m.URL != "" {
				s += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			out = append(out, s)
		}
	}
	return out
}

// NoConsoleErrors fails the test for each console error (ConsoleErrors).
func (b *Browser) NoConsoleErrors() {
	b.t.Helper()
	for _, e := range b.ConsoleErrors() {
		b.t.Errorf("browser console: %s", e)
	}
}

// consoleNote is the console's errors, appended to a failure message.
func (b *Browser) consoleNote() string {
	errs := b.ConsoleErrors()
	if len(errs) == 0 {
		return ""
	}
	return "\nconsole errors:\n  " + strings.Join(errs, "\n  ")
}

// Screenshot saves a full-page PNG of the tab as <dir>/<test>-<name>.png
// and returns its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png := Run(b, chromedp.FullScreenshot(100))
	file := filepath.Join(b.dir, sanitize(b.t.Name())+"-"+sanitize(name)+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatalf("cannot save screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s", file)
	return file
}

// artifactsDir is $SURGE_ARTIFACTS (made if missing) or t's temp dir.
func artifactsDir(t testing.TB) string {
	if d := os.Getenv(EnvArtifacts); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("cannot make %s=%q: %v", EnvArtifacts, d, err)
		}
		return d
	}
	return t.TempDir()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
