package phx_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goBlocks returns the ```go blocks of a Markdown file.
func goBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```go"):
			in, cur = true, nil
		case in && strings.HasPrefix(line, "```"):
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestGuideCodeBuildsAndRuns compiles docs/guide.md's server program (§2)
// as it is printed, and runs the guide's phxtest test (§6) against its Room:
// the guide's examples cannot drift from the API.
func TestGuideCodeBuildsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a package with the go command")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	var program, test string
	for _, b := range goBlocks(t, filepath.Join("docs", "guide.md")) {
		switch {
		case strings.HasPrefix(b, "package main"):
			program = b
		case strings.HasPrefix(b, "func TestRoom("):
			test = b
		}
	}
	if program == "" || test == "" {
		t.Fatal("docs/guide.md: the server program (package main) or func TestRoom not found")
	}
	// Inside the module (testdata is skipped by ./... patterns), so that the
	// imports resolve to this checkout.
	dir, err := os.MkdirTemp("testdata", "guidecheck-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	testFile := "package main\n\nimport (\n\t\"testing\"\n\n\t\"github.com/phxgo/phx\"\n\t\"github.com/phxgo/phx/phxtest\"\n)\n\n" + test
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main_test.go"), []byte(testFile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "test", "-count=1", "./"+filepath.ToSlash(dir))
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the guide's code does not build or its test fails: %v\n%s", err, out)
	}
}
