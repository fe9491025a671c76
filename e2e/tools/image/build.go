package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is: its binary, where it goes and how it runs.
const (
	modulePath = "github.com/aws-auth-webhook/aws-auth-webhook"
	// versionVar is the variable the Makefile's -ldflags -X sets.
	versionVar = modulePath + "/cmd/aws-auth-webhook/app.version"
	entrypoint = "/aws-auth-webhook"
	// nonroot is distroless's nonroot user and group.
	nonrootUID = 65532
	imageUser  = "65532:65532"
	workingDir = "/home/nonroot"
)

var defaultCmd = []string{"serve"}

// defaultPath is distroless's PATH (nothing is on it but the entrypoint).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// OCI annotation and label keys.
const (
	annCreated     = "org.opencontainers.image.created"
	annVersion     = "org.opencontainers.image.version"
	annRevision    = "org.opencontainers.image.revision"
	annSource      = "org.opencontainers.image.source"
	annTitle       = "org.opencontainers.image.title"
	annDescription = "org.opencontainers.image.description"
	annBaseName    = "org.opencontainers.image.base.name"
	annBaseDigest  = "org.opencontainers.image.base.digest"
	annRefName     = "org.opencontainers.image.ref.name"
)

// Spec is what to build.
type Spec struct {
	Binaries                  []Binary
	Version, Revision, Source string
	// Created is every timestamp in the image (file times, config,
	// history, annotations, SBOM), so a build is reproducible.
	Created time.Time
	// Base is a registry image pinned by digest; empty: the offline base.
	Base string
	// RemoteOptions reach the registry of Base (tests pass a transport).
	RemoteOptions []remote.Option
	// MainPackage is the package the binaries must be built from; empty:
	// aws-auth-webhook's (tests build a small stand-in).
	MainPackage string
}

func (s Spec) mainPackage() string {
	if s.MainPackage != "" {
		return s.MainPackage
	}
	return modulePath + "/cmd/aws-auth-webhook"
}

// Binary is the aws-auth-webhook binary for one platform.
type Binary struct {
	Platform v1.Platform
	Path     string
}

// PlatformImage is one platform's image and its SBOM.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
	// SBOM is an OCI artifact manifest (artifactType CycloneDX) whose
	// subject is Image.
	SBOM v1.Image
	// Components counts the SBOM's components (modules and the Go
	// standard library).
	Components int
	// BaseDigest is the pulled base's manifest digest (empty offline).
	BaseDigest string
}

// Built is the result of Build.
type Built struct {
	Spec      Spec
	Index     v1.ImageIndex
	Platforms []PlatformImage
}

// Build assembles one image per binary and the index over them.
func Build(ctx context.Context, spec Spec) (*Built, error) {
	if len(spec.Binaries) == 0 {
		return nil, errors.New("no --binary given")
	}
	spec.Binaries = append([]Binary(nil), spec.Binaries...) // normalized below, not the caller's
	seen := map[string]bool{}
	for i := range spec.Binaries {
		p := normalizePlatform(spec.Binaries[i].Platform)
		spec.Binaries[i].Platform = p
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %s given twice", p)
		}
		seen[p.String()] = true
	}
	var baseRef name.Digest
	if spec.Base != "" {
		ref, err := name.ParseReference(spec.Base)
		if err != nil {
			return nil, fmt.Errorf("BASE %q: %w", spec.Base, err)
		}
		d, ok := ref.(name.Digest)
		if !ok {
			return nil, fmt.Errorf("BASE %q is not pinned: name it by digest (%s@sha256:...), so the build is reproducible and cannot change under you", spec.Base, spec.Base)
		}
		baseRef = d
	}

	built := &Built{Spec: spec}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var baseLayer v1.Layer
	for _, b := range spec.Binaries {
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return nil, err
		}
		info, err := checkBinary(b, data, spec)
		if err != nil {
			return nil, err
		}
		var base v1.Image
		var baseDigest string
		if spec.Base == "" {
			if baseLayer == nil {
				if baseLayer, err = offlineBaseLayer(spec.Created); err != nil {
					return nil, err
				}
			}
			base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
			if base, err = mutate.Append(base, mutate.Addendum{Layer: baseLayer, MediaType: types.OCILayer, History: v1.History{
				Created:   v1.Time{Time: spec.Created},
				CreatedBy: "e2e/tools/image: base (/etc/passwd, /etc/group with nonroot 65532, /etc/nsswitch.conf, /tmp, /home/nonroot)",
				Comment:   "offline base, as distroless static holds it",
			}}); err != nil {
				return nil, err
			}
		} else {
			if base, baseDigest, err = pullBase(ctx, baseRef, b.Platform, spec.RemoteOptions); err != nil {
				return nil, err
			}
		}
		img, err := appImage(base, data, b.Platform, spec, baseDigest)
		if err != nil {
			return nil, err
		}
		subject, err := subjectOf(img)
		if err != nil {
			return nil, err
		}
		bom, components, err := cycloneDX(info, data, spec, b.Platform)
		if err != nil {
			return nil, err
		}
		sbom, err := sbomArtifact(bom, subject, spec.Created, b.Platform)
		if err != nil {
			return nil, err
		}
		plat := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &plat}})
		built.Platforms = append(built.Platforms, PlatformImage{Platform: plat, Image: img, SBOM: sbom, Components: components, BaseDigest: baseDigest})
	}
	built.Index = mutate.Annotations(idx, annotations(spec, "", "")).(v1.ImageIndex)
	return built, nil
}

// normalizePlatform gives arm64 its variant v8, as the OCI image index
// spec recommends and distroless's indexes have it.
func normalizePlatform(p v1.Platform) v1.Platform {
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return p
}

// plainImage keeps an image's descriptor in the index free of an
// artifactType (go-containerregistry would set the config's media type).
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// elfMachine is the ELF machine of each GOARCH the image may be built for.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// checkBinary refuses a binary that is not what the image must run: a
// static Linux ELF for the platform, built by the Makefile's shared flags
// (CGO off, -trimpath, the version stamped by -ldflags -X).
func checkBinary(b Binary, data []byte, spec Spec) (*buildinfo.BuildInfo, error) {
	p, version := b.Platform, spec.Version
	if p.OS != "linux" {
		return nil, fmt.Errorf("%s: platform %s: only linux images are built", b.Path, p)
	}
	f, err := elf.NewFile(bytes.NewReader(data)) // over memory: nothing to close
	if err != nil {
		return nil, fmt.Errorf("%s is not a Linux (ELF) binary: %w", b.Path, err)
	}
	want, ok := elfMachine[p.Architecture]
	if !ok {
		return nil, fmt.Errorf("%s: architecture %s is not supported", b.Path, p.Architecture)
	}
	if f.Machine != want {
		return nil, fmt.Errorf("%s is built for %s, not %s", b.Path, f.Machine, p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked (it asks for an ELF interpreter), but the image has no libc: build it with CGO_ENABLED=0", b.Path)
		}
	}
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s carries no Go build information: %w", b.Path, err)
	}
	if info.Path != spec.mainPackage() {
		return nil, fmt.Errorf("%s is built from %s, not %s", b.Path, info.Path, spec.mainPackage())
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"GOOS": p.OS, "GOARCH": p.Architecture, "CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != v {
			return nil, fmt.Errorf("%s was built with %s=%q, want %q: build it with `make image` (the Makefile's GOBUILD)", b.Path, k, settings[k], v)
		}
	}
	// -trimpath keeps -ldflags out of the build information, so look for
	// the string -X put into the binary.
	if !bytes.Contains(data, []byte(version)) {
		return nil, fmt.Errorf("%s does not carry version %q (set by -ldflags -X %s): build it with `make image VERSION=%s`", b.Path, version, versionVar, version)
	}
	return info, nil
}

// annotations are the OCI annotations (and config labels) of the index, of
// each image and of the SBOM artifacts.
func annotations(spec Spec, baseName, baseDigest string) map[string]string {
	a := map[string]string{
		annCreated:     spec.Created.Format(time.RFC3339),
		annVersion:     spec.Version,
		annSource:      spec.Source,
		annTitle:       "aws-auth-webhook",
		annDescription: "Admission webhook that guards and completes the EKS kube-system/aws-auth ConfigMap",
	}
	if spec.Revision != "" {
		a[annRevision] = spec.Revision
	}
	if baseDigest != "" {
		a[annBaseName] = baseName
		a[annBaseDigest] = baseDigest
	}
	return a
}

// appImage puts the binary on base and sets how the image runs.
func appImage(base v1.Image, binary []byte, p v1.Platform, spec Spec, baseDigest string) (v1.Image, error) {
	layer, err := tarLayer(spec.Created, []tarEntry{{name: strings.TrimPrefix(entrypoint, "/"), mode: 0o755, data: binary}})
	if err != nil {
		return nil, err
	}
	mt, err := base.MediaType()
	if err != nil {
		return nil, err
	}
	layerType := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: layerType, History: v1.History{
		Created:   v1.Time{Time: spec.Created},
		CreatedBy: "e2e/tools/image: COPY aws-auth-webhook " + entrypoint,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: spec.Created}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.User = imageUser
	cf.Config.Entrypoint = []string{entrypoint}
	cf.Config.Cmd = defaultCmd
	if spec.Base == "" {
		cf.Config.Env = []string{defaultPath}
		cf.Config.WorkingDir = workingDir
	}
	anns := annotations(spec, spec.Base, baseDigest)
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	for k, v := range anns {
		cf.Config.Labels[k] = v
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, anns).(v1.Image), nil
}

// pullBase fetches base's image for platform p (from an index, or a single
// image whose platform must be p) and returns it with its digest.
func pullBase(ctx context.Context, ref name.Digest, p v1.Platform, opts []remote.Option) (v1.Image, string, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("BASE %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, "", err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, "", err
		}
		for _, d := range m.Manifests {
			if d.Platform != nil && normalizePlatform(*d.Platform).Satisfies(p) {
				img, err := idx.Image(d.Digest)
				return img, d.Digest.String(), err
			}
		}
		return nil, "", fmt.Errorf("BASE %s has no image for %s", ref, p)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, "", err
	}
	if have := normalizePlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}); !have.Satisfies(p) {
		return nil, "", fmt.Errorf("BASE %s is an image for %s, not %s: name an index that has both", ref, have, p)
	}
	return img, desc.Digest.String(), nil
}

// subjectOf is the descriptor an SBOM's subject field names: media type,
// digest and size, nothing else.
func subjectOf(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

// uncompressedSize is the sum of an image's layers, unpacked.
func uncompressedSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
