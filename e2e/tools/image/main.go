// Command image builds the aws-auth-webhook container image without a
// Docker engine, as `make image` runs it: one OCI image per platform from
// binaries that `make image` built with the Makefile's shared build flags,
// joined into one multi-platform index, with a CycloneDX SBOM per platform
// attached as an OCI 1.1 referrer, written as an OCI image layout and, when
// asked, pushed to a registry.
//
//	go run ./e2e/tools/image \
//	  --binary linux/amd64=bin/platforms/linux_amd64/aws-auth-webhook \
//	  --binary linux/arm64=bin/platforms/linux_arm64/aws-auth-webhook \
//	  --out bin/image --version v0.1.0 --revision <git sha> --created <unix seconds> \
//	  [--base registry/repo@sha256:...] [--push registry/repo[:tag]]
//
// Without --base the image is assembled offline on an empty base from what
// distroless static holds: the static binary, a CA bundle (the NSS roots
// of golang.org/x/crypto/x509roots/fallback/bundle), /etc/passwd and /etc/group with
// the nonroot user 65532, /etc/nsswitch.conf, /tmp and /home/nonroot; no
// shell, no package manager, no libc. Every timestamp is --created, so the
// same commit builds the same digests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var binaries stringList
	fs.Var(&binaries, "binary", "OS/ARCH=PATH of the binary for one platform (repeat per platform)")
	out := fs.String("out", "bin/image", "folder of the OCI image layout to write (replaced)")
	version := fs.String("version", "", "version: the layout's tag, the org.opencontainers.image.version label; the binaries must carry it")
	revision := fs.String("revision", "", "source revision (git commit) for the org.opencontainers.image.revision label")
	source := fs.String("source", "https://github.com/aws-auth-webhook/aws-auth-webhook", "source repository URL for the org.opencontainers.image.source label")
	created := fs.String("created", "0", "creation time, Unix seconds (SOURCE_DATE_EPOCH): every timestamp in the image")
	base := fs.String("base", "", "registry base image pinned by digest (repo@sha256:... or repo:tag@sha256:...); empty: the offline base")
	push := fs.String("push", "", "push the index and its SBOMs to this repository (registry/repo[:tag]; the tag defaults to --version)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *version == "" {
		return errors.New("--version is required")
	}
	secs, err := strconv.ParseInt(*created, 10, 64)
	if err != nil || secs < 0 {
		return fmt.Errorf("--created %q: want Unix seconds", *created)
	}
	spec := Spec{
		Version: *version, Revision: *revision, Source: *source,
		Created: time.Unix(secs, 0).UTC(), Base: *base,
	}
	for _, b := range binaries {
		plat, path, ok := strings.Cut(b, "=")
		if !ok {
			return fmt.Errorf("--binary %q: want OS/ARCH=PATH", b)
		}
		p, err := v1.ParsePlatform(plat)
		if err != nil {
			return fmt.Errorf("--binary %q: %w", b, err)
		}
		spec.Binaries = append(spec.Binaries, Binary{Platform: *p, Path: path})
	}

	start := time.Now()
	built, err := Build(ctx, spec)
	if err != nil {
		return err
	}
	if err := WriteLayout(*out, built); err != nil {
		return err
	}
	if err := built.Summary(stdout, *out); err != nil {
		return err
	}
	if *push != "" {
		ref, err := Push(ctx, *push, built)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "pushed %s (the index and %d SBOM referrers)\n", ref, len(built.Platforms)); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "built in %v\n", time.Since(start).Round(10*time.Millisecond))
	return err
}
