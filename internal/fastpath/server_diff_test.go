package fastpath

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/golivestream/live/internal/fastpath/fastpathtest"
)

// diffHandler answers by path, in each of the ways a response can be
// framed, so that the fast path and net/http can be compared on it. It
// sets a Content-Type on every response: net/http would sniff one, the
// fast path does not. /live/echo answers the headers of testHeaders it
// got, and the request's fields, which must not tell the two apart.
func diffHandler(file *os.File, fileBody string) http.Handler {
	big := strings.Repeat("abcdefghijklmnop", 1<<10) // over smallBody
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Cache-Control", "max-age=1")
		switch strings.TrimPrefix(r.URL.Path, "/live/") {
		case "fixed":
			h.Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "unknown-length": // more than net/http holds: chunked
			io.WriteString(w, big[:100])
			io.WriteString(w, big)
		case "flushed":
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			io.WriteString(w, "second")
		case "last-flushed": // the last chunk goes with the body's end
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			writeLast(w, "second")
		case "last-big": // the head, the only chunk and the end at once
			writeLast(w, big)
		case "last-small": // held: a Content-Length, no chunks
			writeLast(w, "small body")
		case "last-fixed":
			h.Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big[:10])
			writeLast(w, big[10:])
		case "last-empty":
			io.WriteString(w, big)
			writeLast(w, "")
		case "small": // all held: a Content-Length is added
			io.WriteString(w, "small body")
		case "empty":
		case "no-content":
			w.WriteHeader(http.StatusNoContent)
		case "not-modified":
			h.Set("Etag", `"e"`)
			w.WriteHeader(http.StatusNotModified)
		case "not-found":
			http.Error(w, "no such thing", http.StatusNotFound)
		case "close":
			h.Set("Connection", "close")
			io.WriteString(w, "bye")
		case "block": // lines formatted beforehand where the writer takes them
			extra := http.Header{"X-Block": {"one", "two"}, "Etag": {`"b"`}, "X-Value": {"a\r\nX-Injected: b"}, "Content-Length": {"7"}}
			if bw, ok := w.(HeaderBlockWriter); ok {
				block, ok := AppendHeaderLines(nil, extra)
				if !ok {
					panic("AppendHeaderLines refused " + fmt.Sprint(extra))
				}
				bw.SetHeaderBlock(block)
				h["Content-Length"] = extra["Content-Length"]
			} else {
				maps.Copy(h, extra)
			}
			io.WriteString(w, "x block")
		case "header-injection":
			h.Set("X-Value", "a\r\nX-Injected: b")
			io.WriteString(w, "x")
		case "file":
			h.Set("Content-Length", strconv.Itoa(len(fileBody)))
			if fs, ok := w.(FileSender); ok {
				if _, sent := fs.SendFile(int(file.Fd()), int64(len(fileBody))); sent {
					return
				}
			}
			io.WriteString(w, fileBody)
		case "echo":
			for _, name := range testHeaders {
				if v, ok := r.Header[name]; ok {
					h["Echo-"+name] = v
				}
			}
			io.WriteString(w, strings.Join([]string{r.Method, r.Host, r.RequestURI, r.URL.Path, r.URL.RawQuery, strconv.FormatBool(r.Close)}, "\n"))
		default:
			io.WriteString(w, "path "+r.URL.Path)
		}
	})
}

// writeLast writes s as the last bytes of w's body, with WriteLast where
// w has it (the fast path), else Write (net/http).
func writeLast(w http.ResponseWriter, s string) {
	if lw, ok := w.(LastWriter); ok {
		lw.WriteLast([]byte(s))
		return
	}
	io.WriteString(w, s)
}

// TestFastPathMatchesNetHTTP sends the same requests to a handler served
// with the fast path and to the same handler served by net/http alone,
// and compares what comes back (fastpathtest.Compare).
func TestFastPathMatchesNetHTTP(t *testing.T) {
	fileBody := strings.Repeat("0123456789", 30_000)
	file, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteString(fileBody); err != nil {
		t.Fatal(err)
	}
	handler := diffHandler(file, fileBody)
	fast := serve(t, &http.Server{Handler: handler}, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: handler}
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })

	get := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: pop\r\nUser-Agent: test\r\n" + strings.Join(headers, "") + "\r\n"
	}
	cases := []struct {
		name string
		reqs []string
		fast int // requests the fast path answers
	}{
		{"fixed length", []string{get("/live/fixed")}, 1},
		{"unknown length", []string{get("/live/unknown-length")}, 1},
		{"flushed", []string{get("/live/flushed")}, 1},
		{"small", []string{get("/live/small")}, 1},
		{"last bytes with the end", []string{get("/live/last-flushed"), get("/live/last-big"), get("/live/last-small"), get("/live/last-fixed"), get("/live/last-empty"), get("/live/small")}, 6},
		{"HEAD, last bytes", []string{"HEAD /live/last-big HTTP/1.1\r\nHost: pop\r\n\r\n", get("/live/last-flushed")}, 2},
		{"empty", []string{get("/live/empty")}, 1},
		{"no content", []string{get("/live/no-content")}, 1},
		{"not modified", []string{get("/live/not-modified")}, 1},
		{"not found", []string{get("/live/not-found")}, 1},
		{"handler closes", []string{get("/live/close")}, 1},
		{"header injection", []string{get("/live/header-injection")}, 1},
		{"header block, then none", []string{get("/live/block"), get("/live/small"), "HEAD /live/block HTTP/1.1\r\nHost: pop\r\n\r\n"}, 3},
		{"file", []string{get("/live/file"), get("/live/file")}, 2},
		{"HEAD of a file", []string{"HEAD /live/file HTTP/1.1\r\nHost: pop\r\n\r\n"}, 1},
		{"HEAD", []string{"HEAD /live/fixed HTTP/1.1\r\nHost: pop\r\n\r\n", "HEAD /live/unknown-length HTTP/1.1\r\nHost: pop\r\n\r\n"}, 2},
		{"echo", []string{get("/live/echo?a=b", "Range: bytes=1-2\r\nIf-None-Match: \"e\"\r\nAccept: */*\r\nX-Pop-Hop: p\r\n")}, 1},
		{"echo, headers in any case", []string{get("/live/echo", "range: bytes=1-2\r\nx-pop-hop: p\r\n")}, 1},
		{"echo, empty header", []string{get("/live/echo", "If-Match:\r\n")}, 1},
		{"pipelined", []string{get("/live/fixed"), get("/live/small"), get("/live/unknown-length")}, 3},
		{"then net/http", []string{get("/live/small"), "OPTIONS /live/small HTTP/1.1\r\nHost: pop\r\n\r\n", get("/live/small")}, 1},
		{"outside the prefix", []string{get("/other")}, 0},
		{"POST", []string{"POST /live/small HTTP/1.1\r\nHost: pop\r\nContent-Length: 2\r\n\r\nhi"}, 0},
		{"HTTP/1.0", []string{"GET /live/small HTTP/1.0\r\n\r\n"}, 0},
		{"escaped path", []string{get("/live/%73mall")}, 0},
		{"bare LF", []string{"GET /live/small HTTP/1.1\nHost: pop\n\n"}, 0},
		{"large head", []string{get("/live/echo", "Cookie: "+strings.Repeat("c", 8<<10)+"\r\n")}, 0},
		{"repeated header", []string{get("/live/echo", "Range: bytes=1-2\r\nRange: bytes=3-4\r\n")}, 0},
		{"connection close", []string{get("/live/echo", "Connection: close\r\n")}, 1},
		{"host with port", []string{"GET /live/echo HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"}, 1},
		{"malformed host", []string{"GET /live/echo HTTP/1.1\r\nHost: a\"b\r\n\r\n"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			answered, handed := fast.answered.Load(), fast.handed.Load()
			fastpathtest.Compare(t, fast.addr, ln.Addr().String(), c.reqs)
			if n := fast.answered.Load() - answered; int(n) != c.fast {
				t.Errorf("fast path answered %d requests, want %d", n, c.fast)
			}
			if n, want := fast.handed.Load()-handed, min(len(c.reqs)-c.fast, 1); int(n) != want {
				t.Errorf("fast path handed over %d connections, want %d", n, want)
			}
		})
	}
}
