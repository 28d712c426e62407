package browsertest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/surge-retail/surge/internal/browsertest"
)

const page = `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>测试</title></head>
<body><h1 id="h">静安店</h1><script>
console.log("hello");
console.error("boom: " + 42);
document.getElementById("h").dataset.ran = "yes";
setTimeout(function () { throw new Error("late failure"); }, 0);
</script></body></html>`

func TestBrowserCollectsConsoleAndScreenshots(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	defer srv.Close()
	b := browsertest.New(t, browsertest.Options{})
	b.Do(chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("#h")))
	if got := browsertest.Run(b, chromedp.Text(chromedp.CSS("#h"))); got != "静安店" {
		t.Errorf("Text(#h) = %q; want 静安店", got)
	}
	if w := browsertest.Eval[int](b, "window.innerWidth"); w != 375 {
		t.Errorf("innerWidth = %d; want 375", w)
	}
	b.Do(chromedp.Poll[chromedp.Void](`document.getElementById("h").dataset.ran === "yes"`))
	// The exception is thrown by a timer: wait for it to reach us.
	var errs []string
	for range 50 {
		if errs = b.ConsoleErrors(); len(errs) >= 2 {
			break
		}
		b.Do(chromedp.Sleep(20 * time.Millisecond))
	}
	joined := strings.Join(errs, "\n")
	if !strings.Contains(joined, "boom: 42") || !strings.Contains(joined, "late failure") {
		t.Errorf("ConsoleErrors() = %q; want console.error and the exception", errs)
	}
	if strings.Contains(joined, "hello") {
		t.Errorf("ConsoleErrors() = %q; console.log is not an error", errs)
	}
	file := b.Screenshot("page")
	png, err := os.ReadFile(file)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Errorf("screenshot %s: %d bytes, err %v; want a PNG", file, len(png), err)
	}
}
