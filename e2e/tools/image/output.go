package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WriteLayout writes built as an OCI image layout in dir, replacing what
// an earlier build left there: index.json lists the multi-platform index
// (tagged with the version, org.opencontainers.image.ref.name) and the SBOM
// artifacts, whose subjects are the platform images.
func WriteLayout(dir string, built *Built) error {
	if err := clearLayout(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(built.Index, layout.WithAnnotations(map[string]string{annRefName: built.Spec.Version})); err != nil {
		return err
	}
	for _, pi := range built.Platforms {
		if err := p.AppendImage(pi.SBOM); err != nil {
			return err
		}
	}
	return nil
}

// clearLayout removes dir when it holds an OCI image layout (or nothing),
// and refuses any other folder, so a mistyped --out deletes nothing else.
func clearLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("--out %s holds files but no OCI image layout (oci-layout); refusing to replace it", dir)
		}
	}
	return os.RemoveAll(dir)
}

// Push writes the index (tagged) and every SBOM artifact (by digest) to
// the repository target, with the credentials docker, podman or a
// credential helper left in the usual places. It returns the index's
// digest reference, the one to deploy.
func Push(ctx context.Context, target string, built *Built) (name.Digest, error) {
	last := target[strings.LastIndex(target, "/")+1:]
	if !strings.ContainsAny(last, ":@") {
		target += ":" + built.Spec.Version
	}
	ref, err := name.NewTag(target)
	if err != nil {
		return name.Digest{}, fmt.Errorf("PUSH %q: want registry/repository[:tag]: %w", target, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, built.Spec.RemoteOptions...)
	if err := remote.WriteIndex(ref, built.Index, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	for _, pi := range built.Platforms {
		d, err := pi.SBOM.Digest()
		if err != nil {
			return name.Digest{}, err
		}
		if err := remote.Write(ref.Context().Digest(d.String()), pi.SBOM, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("pushing the %s SBOM: %w", pi.Platform, err)
		}
	}
	d, err := built.Index.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(d.String()), nil
}

// Summary prints what was built: digests and sizes per platform.
func (b *Built) Summary(w io.Writer, dir string) error {
	var out strings.Builder
	d, err := b.Index.Digest()
	if err != nil {
		return err
	}
	base := "offline (distroless static's files, on an empty base)"
	if b.Spec.Base != "" {
		base = b.Spec.Base
	}
	fmt.Fprintf(&out, "OCI image layout %s, tag %s, base %s\n", dir, b.Spec.Version, base)
	fmt.Fprintf(&out, "  index          %s\n", d)
	for _, pi := range b.Platforms {
		md, err := pi.Image.Digest()
		if err != nil {
			return err
		}
		compressed, err := compressedSize(pi.Image)
		if err != nil {
			return err
		}
		unpacked, err := uncompressedSize(pi.Image)
		if err != nil {
			return err
		}
		sd, err := pi.SBOM.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "  %-14s %s  %s compressed, %s unpacked\n", pi.Platform.String(), md, mib(compressed), mib(unpacked))
		fmt.Fprintf(&out, "  %-14s %s  CycloneDX SBOM, %d components\n", "", sd, pi.Components)
	}
	_, err = io.WriteString(w, out.String())
	return err
}

// compressedSize is what a node pulls: manifest, config and layers.
func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	size, err := img.Size()
	if err != nil {
		return 0, err
	}
	size += m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
