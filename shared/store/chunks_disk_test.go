//go:build !js

package store_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ddt/shared/chunk"
	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func openDiskChunks(t *testing.T, dir string) *store.DiskChunks {
	t.Helper()
	s, err := store.OpenDiskChunks(dir)
	if err != nil {
		t.Fatalf("OpenDiskChunks: %v", err)
	}
	return s
}

func TestDiskChunks(t *testing.T) {
	storetest.RunChunks(t, func(t *testing.T) store.Chunks { return openDiskChunks(t, t.TempDir()) })
}

func TestDiskChunksPersistent(t *testing.T) {
	storetest.RunChunksPersistent(t, func(t *testing.T) func() (store.Chunks, error) {
		dir := filepath.Join(t.TempDir(), "a", "chunks") // OpenDiskChunks makes the parents
		return func() (store.Chunks, error) { return store.OpenDiskChunks(dir) }
	})
}

// TestDiskChunksLayout checks the files a crash could leave: a chunk is
// under its name whole or not at all, and a half-written temporary file
// is never listed and is cleaned at the next open.
func TestDiskChunksLayout(t *testing.T) {
	dir := t.TempDir()
	s := openDiskChunks(t, dir)
	data := []byte("a chunk on disk")
	h := chunk.SumGo(data)
	if err := s.Put(h, data); err != nil {
		t.Fatal(err)
	}
	x := h.String()
	path := filepath.Join(dir, x[:2], x)
	if got, err := os.ReadFile(path); err != nil || string(got) != string(data) {
		t.Fatalf("chunk file %s = %q, %v", path, got, err)
	}
	// What a crash mid-write leaves: a temporary file with half the bytes.
	other := []byte("another chunk, interrupted")
	ho := chunk.SumGo(other)
	xo := ho.String()
	os.MkdirAll(filepath.Join(dir, xo[:2]), 0o700)
	tmp := filepath.Join(dir, xo[:2], xo+".123.tmp")
	if err := os.WriteFile(tmp, other[:5], 0o600); err != nil {
		t.Fatal(err)
	}
	// And files that are not chunks at all.
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, x[:2], "notes.txt"), []byte("x"), 0o600)
	list, err := s.List()
	if err != nil || len(list) != 1 || list[h] != len(data) {
		t.Fatalf("List = %v, %v; want just the one chunk", list, err)
	}
	if _, err := s.Size(ho); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Size(half-written chunk) = %v, want ErrNotFound", err)
	}
	s.Close()
	s = openDiskChunks(t, dir)
	defer s.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file survived a reopen: %v", err)
	}
	if err := s.Put(ho, other); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(ho); err != nil || n != len(other) {
		t.Fatalf("Size = %d, %v", n, err)
	}
}

// TestDiskChunksFull fills a small file system: the put that does not fit
// fails with ErrQuota, leaves neither the chunk nor a temporary file, and
// the chunks already there stay readable. It needs a small file system:
// as root it runs itself again in a private mount namespace over a 2 MiB
// tmpfs; otherwise it is skipped.
func TestDiskChunksFull(t *testing.T) {
	dir := os.Getenv("DDT_SMALL_FS")
	if dir == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a private tmpfs")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("needs unshare(1) for a private tmpfs")
		}
		dir = t.TempDir()
		cmd := exec.Command(unshare, "-m", "sh", "-c", `mount -t tmpfs -o size=2m ddt-test "$DDT_SMALL_FS" && exec "$0" -test.run '^TestDiskChunksFull$' -test.count=1 -test.v`, os.Args[0])
		cmd.Env = append(os.Environ(), "DDT_SMALL_FS="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskChunksFull") {
			t.Fatalf("in a 2 MiB tmpfs: %v\n%s", err, out)
		}
		return
	}
	s := openDiskChunks(t, dir)
	defer s.Close()
	small := make([]byte, 1<<20)
	small[0] = 1
	hs := chunk.SumGo(small)
	if err := s.Put(hs, small); err != nil {
		t.Fatalf("Put(1 MiB) into 2 MiB: %v", err)
	}
	big := make([]byte, 3<<20)
	hb := chunk.SumGo(big)
	err := s.Put(hb, big)
	if !errors.Is(err, store.ErrQuota) {
		t.Fatalf("Put(3 MiB) into what is left of 2 MiB = %v, want ErrQuota", err)
	}
	if !strings.Contains(err.Error(), "full") {
		t.Errorf("error %q does not say the disk is full", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List after the refused put = %v, %v", list, err)
	}
	x := hb.String()
	if left, _ := filepath.Glob(filepath.Join(dir, x[:2], "*")); len(left) != 0 {
		t.Fatalf("the refused put left files: %v", left)
	}
	p := make([]byte, len(small))
	if _, err := s.ReadAt(hs, p, 0); err != nil || p[0] != 1 {
		t.Fatalf("ReadAt(the chunk already there) = %v", err)
	}
}
