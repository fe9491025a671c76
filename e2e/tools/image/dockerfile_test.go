package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, two folders up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		t.Fatal(err)
	}
	return root
}

// goBuild matches a `go build` of the webhook in `make -n` output: the env
// and flags before -o, and the package.
var goBuild = regexp.MustCompile(`(CGO_ENABLED=\S+) go build (.*?) -o \S+ (\./cmd/aws-auth-webhook)`)

// TestBuildFlagsAgree: every way the shipped binary is built — `make
// build` (what the e2e tests run), `make binary` (what the Dockerfile
// runs) and `make image` — compiles with the same env and flags, and the
// Dockerfile compiles only through `make binary`, passing the target
// platform and the version. So the Dockerfile and the Makefile cannot
// drift: a flag added in one place reaches all three.
func TestBuildFlagsAgree(t *testing.T) {
	root := repoRoot(t)
	dryRun := func(target string, vars ...string) []string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"--no-print-directory", "-n", target, "VERSION=v-agree"}, vars...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		var builds []string
		for _, m := range goBuild.FindAllStringSubmatch(string(out), -1) {
			builds = append(builds, m[1]+" go build "+m[2])
		}
		if len(builds) == 0 {
			t.Fatalf("make -n %s builds no ./cmd/aws-auth-webhook:\n%s", target, out)
		}
		return builds
	}
	want := dryRun("binary", "OUT=/out/aws-auth-webhook")[0]
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "-X github.com/aws-auth-webhook/aws-auth-webhook/cmd/aws-auth-webhook/app.version=v-agree"} {
		if !strings.Contains(want, flag) {
			t.Errorf("make binary builds with %q, which lacks %s", want, flag)
		}
	}
	for _, target := range []string{"build", "image"} {
		for _, got := range dryRun(target) {
			if got != want {
				t.Errorf("make %s builds with\n  %s\nbut make binary (the Dockerfile's) with\n  %s", target, got, want)
			}
		}
	}

	// The Dockerfile's build stage.
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, line := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "RUN") {
			runs = append(runs, strings.Join(f[1:], " "))
		}
	}
	var makes int
	for _, r := range runs {
		if strings.Contains(r, "go build") || strings.Contains(r, "-ldflags") || strings.Contains(r, "CGO_ENABLED") {
			t.Errorf("the Dockerfile builds on its own (%q): build with `make binary`, which uses the Makefile's GOBUILD", r)
		}
		if strings.Contains(r, "make binary") {
			makes++
			for _, part := range []string{"GOOS=${TARGETOS}", "GOARCH=${TARGETARCH}", "VERSION=${VERSION}", "OUT=/out/aws-auth-webhook"} {
				if !strings.Contains(r, part) {
					t.Errorf("the Dockerfile's %q lacks %s", r, part)
				}
			}
		}
	}
	if makes != 1 {
		t.Errorf("the Dockerfile runs `make binary` %d times, want once; RUN lines: %q", makes, runs)
	}
	for _, copied := range []string{"COPY Makefile", "COPY --from=build /out/aws-auth-webhook /aws-auth-webhook", "USER 65532:65532",
		`ENTRYPOINT ["` + entrypoint + `"]`, `CMD ["` + strings.Join(defaultCmd, `", "`) + `"]`} {
		if !strings.Contains(string(raw), copied) {
			t.Errorf("the Dockerfile lacks %q (the image make image builds has it)", copied)
		}
	}
}
