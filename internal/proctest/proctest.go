// Package proctest runs the commands of this module as real processes in
// tests: it builds them, starts them, reads the lines they print, and waits
// for what they log.
package proctest

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build builds the command in package directory pkg (relative to the
// test's directory) into dir and returns the binary's path.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Proc is a process under test: the first lines it printed, its standard
// error, and each standard error line as an event to await.
type Proc struct {
	Cmd *exec.Cmd
	// Stdout holds the first lines of standard output that Start read.
	Stdout []string
	Stderr *SyncBuffer

	events chan string
	reads  sync.WaitGroup
	once   sync.Once
	err    error
}

// Start runs bin with args until the test ends (then it is killed), and
// reads the first lines lines of its standard output, failing the test if
// they do not come.
func Start(t testing.TB, bin string, lines int, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), Stderr: &SyncBuffer{}, events: make(chan string, 10000)}
	stdout, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		p.Wait()
	})
	p.reads.Add(2)
	go func() {
		defer p.reads.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.Stderr.Write(append(sc.Bytes(), '\n'))
			select {
			case p.events <- sc.Text():
			default: // nobody awaits this far ahead
			}
		}
	}()
	out := bufio.NewReader(stdout)
	for range lines {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("%s printed %d of %d lines: %v\n%s", bin, len(p.Stdout), lines, err, p.Stderr)
		}
		p.Stdout = append(p.Stdout, l)
	}
	go func() {
		defer p.reads.Done()
		io.Copy(io.Discard, out)
	}()
	return p
}

// Wait waits for the process to exit, once, and returns how it exited.
func (p *Proc) Wait() error {
	p.once.Do(func() {
		p.reads.Wait() // the pipes close when the process exits
		p.err = p.Cmd.Wait()
	})
	return p.err
}

// Await returns when the process logs a line containing want, failing the
// test after 20 s.
func (p *Proc) Await(t testing.TB, want string) {
	t.Helper()
	p.AwaitWithin(t, want, 20*time.Second)
}

// AwaitWithin is Await failing the test after d, for what takes longer
// (a process noticing that a server it talks to is gone).
func (p *Proc) AwaitWithin(t testing.TB, want string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l := <-p.events:
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("never logged %q:\n%s", want, p.Stderr)
		}
	}
}

// SyncBuffer collects a process's output while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
