package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	testVersion = "v9.9.9-test"
	testPkg     = modulePath + "/e2e/tools/image/testdata/hello"
)

var testCreated = time.Unix(1767225600, 0).UTC() // 2026-01-01

// buildTestBinary builds testdata/<pkg> for linux/arch with the Makefile's
// flags (CGO off, -trimpath, the version set by -X) into dir.
func buildTestBinary(t *testing.T, dir, pkg, arch string) string {
	t.Helper()
	out := filepath.Join(dir, pkg+"-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X main.version="+testVersion,
		"-o", out, "./testdata/"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/%s for %s: %v\n%s", pkg, arch, err, b)
	}
	return out
}

// testBinaries are the stand-in binaries, built once.
var testBinaries = map[string]string{}

func testSpec(t *testing.T) Spec {
	t.Helper()
	if len(testBinaries) == 0 {
		dir, err := os.MkdirTemp("", "image-test")
		if err != nil {
			t.Fatal(err)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			testBinaries[arch] = buildTestBinary(t, dir, "hello", arch)
		}
	}
	return Spec{
		Binaries: []Binary{
			{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Path: testBinaries["amd64"]},
			{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Path: testBinaries["arm64"]},
		},
		Version: testVersion, Revision: "0123456789abcdef0123456789abcdef01234567",
		Source: "https://example.com/aws-auth-webhook", Created: testCreated, MainPackage: testPkg,
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range testBinaries {
		_ = os.RemoveAll(filepath.Dir(p))
		break
	}
	os.Exit(code)
}

// file is one entry of an image's flattened filesystem.
type file struct {
	mode     int64
	typ      byte
	uid, gid int
	data     []byte
	modTime  time.Time
}

func flatten(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{mode: h.Mode, typ: h.Typeflag, uid: h.Uid, gid: h.Gid, data: data, modTime: h.ModTime}
	}
}

func TestOfflineImage(t *testing.T) {
	spec := testSpec(t)
	built, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	im, err := built.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index: %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	wantPlatforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	for i, d := range im.Manifests {
		if d.Platform == nil || !d.Platform.Equals(wantPlatforms[i]) || d.ArtifactType != "" {
			t.Errorf("index entry %d: platform %v artifactType %q, want %v and none", i, d.Platform, d.ArtifactType, wantPlatforms[i])
		}
	}
	wantAnn := map[string]string{
		annVersion: testVersion, annRevision: spec.Revision, annSource: spec.Source,
		annCreated: "2026-01-01T00:00:00Z", annTitle: "aws-auth-webhook",
	}
	for k, v := range wantAnn {
		if im.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}

	for i, pi := range built.Platforms {
		bin, err := os.ReadFile(spec.Binaries[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := pi.Image.Digest()
		if d != im.Manifests[i].Digest {
			t.Errorf("%s: image %s is not the index's %s", pi.Platform, d, im.Manifests[i].Digest)
		}
		cf, err := pi.Image.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != wantPlatforms[i].Architecture || cf.Variant != wantPlatforms[i].Variant {
			t.Errorf("%s: config platform %s/%s/%s", pi.Platform, cf.OS, cf.Architecture, cf.Variant)
		}
		c := cf.Config
		if c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/aws-auth-webhook" || strings.Join(c.Cmd, " ") != "serve" ||
			c.WorkingDir != "/home/nonroot" {
			t.Errorf("%s: runs as %q: %q %q in %q", pi.Platform, c.User, c.Entrypoint, c.Cmd, c.WorkingDir)
		}
		for k, v := range wantAnn {
			if c.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", pi.Platform, k, c.Labels[k], v)
			}
		}
		if !cf.Created.Equal(testCreated) {
			t.Errorf("%s: created %v", pi.Platform, cf.Created)
		}
		m, err := pi.Image.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Annotations[annVersion] != testVersion || len(m.Layers) != 2 {
			t.Errorf("%s: manifest %s, %d layers, annotations %v", pi.Platform, m.MediaType, len(m.Layers), m.Annotations)
		}

		// The filesystem: distroless static's files for a static binary,
		// and nothing else (no shell).
		files := flatten(t, pi.Image)
		want := map[string]file{
			"etc":               {mode: 0o755, typ: tar.TypeDir},
			"etc/group":         {mode: 0o644, typ: tar.TypeReg, data: []byte(group)},
			"etc/nsswitch.conf": {mode: 0o644, typ: tar.TypeReg, data: []byte(nsswitch)},
			"etc/passwd":        {mode: 0o644, typ: tar.TypeReg, data: []byte(passwd)},
			"etc/ssl":           {mode: 0o755, typ: tar.TypeDir},
			"etc/ssl/certs":     {mode: 0o755, typ: tar.TypeDir},
			caBundlePath:        {mode: 0o644, typ: tar.TypeReg, data: caBundle()},
			"home":              {mode: 0o755, typ: tar.TypeDir},
			"home/nonroot":      {mode: 0o700, typ: tar.TypeDir, uid: 65532, gid: 65532},
			"root":              {mode: 0o700, typ: tar.TypeDir},
			"tmp":               {mode: 0o1777, typ: tar.TypeDir},
			"aws-auth-webhook":  {mode: 0o755, typ: tar.TypeReg, data: bin},
		}
		for name, f := range files {
			w, ok := want[strings.TrimSuffix(name, "/")]
			if !ok {
				t.Errorf("%s: unexpected %s in the image", pi.Platform, name)
				continue
			}
			if f.mode != w.mode || f.typ != w.typ || f.uid != w.uid || f.gid != w.gid || !bytes.Equal(f.data, w.data) {
				t.Errorf("%s: %s is mode %o type %c owner %d:%d (%d bytes), want %o %c %d:%d (%d bytes)", pi.Platform, name,
					f.mode, f.typ, f.uid, f.gid, len(f.data), w.mode, w.typ, w.uid, w.gid, len(w.data))
			}
			if !f.modTime.Equal(testCreated) {
				t.Errorf("%s: %s has time %v, want --created", pi.Platform, name, f.modTime)
			}
			delete(want, strings.TrimSuffix(name, "/"))
		}
		for name := range want {
			t.Errorf("%s: %s is missing from the image", pi.Platform, name)
		}
		if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd lacks the nonroot user", pi.Platform)
		}
		checkCABundle(t, pi.Platform, files[caBundlePath].data)

		checkSBOM(t, pi, bin)
	}
}

// checkCABundle: the image's CA bundle is what the binary verifies AWS's
// TLS with (it carries no roots of its own where the system has some): the
// NSS roots, Amazon's among them, every block a certificate.
func checkCABundle(t *testing.T, p v1.Platform, data []byte) {
	t.Helper()
	n := 0
	for rest := data; ; n++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				t.Errorf("%s: %s has %d bytes that are not PEM after %d certificates", p, caBundlePath, len(rest), n)
			}
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); b.Type != "CERTIFICATE" || err != nil {
			t.Errorf("%s: %s block %d: %s %v", p, caBundlePath, n, b.Type, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data)
	amazon := 0
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil || !strings.HasPrefix(c.Subject.CommonName, "Amazon Root CA ") {
			continue
		}
		amazon++
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("%s: %s does not verify %s: %v", p, caBundlePath, c.Subject.CommonName, err)
		}
	}
	if n < 100 || amazon != 4 {
		t.Errorf("%s: %s holds %d certificates (want the NSS store, over 100) and %d Amazon roots (want 4)", p, caBundlePath, n, amazon)
	}
}

// checkSBOM: the SBOM is an OCI artifact whose subject is the platform
// image, and its CycloneDX document describes the binary inside.
func checkSBOM(t *testing.T, pi PlatformImage, bin []byte) {
	t.Helper()
	m, err := pi.SBOM.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pi.Image.Digest()
	if m.ArtifactType != cycloneDXType || m.Subject == nil || m.Subject.Digest != d ||
		m.Config.MediaType != types.OCIEmptyJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != cycloneDXType {
		t.Fatalf("%s: SBOM manifest %+v does not refer to image %s as a CycloneDX artifact", pi.Platform, m, d)
	}
	layers, err := pi.SBOM.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(rc, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("%s: the SBOM is not CycloneDX JSON: %v", pi.Platform, err)
	}
	sum := sha256.Sum256(bin)
	mc := bom.Metadata.Component
	if bom.SpecVersion != cdx.SpecVersion1_6 || mc == nil || mc.Version != testVersion || mc.Hashes == nil ||
		(*mc.Hashes)[0].Value != hex.EncodeToString(sum[:]) {
		t.Fatalf("%s: SBOM %s describes %+v, not the binary (sha256 %x)", pi.Platform, bom.SpecVersion, mc, sum)
	}
	if !strings.Contains(mc.PackageURL, "goarch="+pi.Platform.Architecture) {
		t.Errorf("%s: main component purl %s lacks the platform", pi.Platform, mc.PackageURL)
	}
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range *bom.Components {
		got[c.Name] = c.Version
	}
	if got["stdlib"] != info.GoVersion {
		t.Errorf("%s: SBOM stdlib %q, the binary was built with %s", pi.Platform, got["stdlib"], info.GoVersion)
	}
	for _, dep := range info.Deps {
		if got[dep.Path] != dep.Version {
			t.Errorf("%s: SBOM has %s at %q, the binary links %s", pi.Platform, dep.Path, got[dep.Path], dep.Version)
		}
	}
	if len(got) != len(info.Deps)+1 || pi.Components != len(got) {
		t.Errorf("%s: SBOM has %d components (counted %d), want the %d modules and stdlib", pi.Platform, len(got), pi.Components, len(info.Deps))
	}
}

func TestBuildIsReproducible(t *testing.T) {
	spec := testSpec(t)
	digest := func(s Spec) v1.Hash {
		t.Helper()
		b, err := Build(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := b.Index.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first, second := digest(spec), digest(spec)
	if first != second {
		t.Fatalf("two builds of the same input: %s and %s", first, second)
	}
	later := spec
	later.Created = testCreated.Add(time.Second)
	if digest(later) == first {
		t.Fatal("--created changed nothing in the image")
	}
	t.Logf("same input, same index digest: %s", first)
}

func TestRefusesBinariesThatWouldNotRun(t *testing.T) {
	spec := testSpec(t)
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"amd64 binary as arm64", func(s *Spec) { s.Binaries[1].Path = s.Binaries[0].Path }, "is built for EM_X86_64, not linux/arm64"},
		{"another version", func(s *Spec) { s.Version = "v1.2.3" }, `does not carry version "v1.2.3"`},
		{"another program", func(s *Spec) { s.MainPackage = "" }, "not " + modulePath + "/cmd/aws-auth-webhook"},
		{"not Linux", func(s *Spec) { s.Binaries[0].Platform.OS = "darwin" }, "only linux images are built"},
		{"base by tag", func(s *Spec) { s.Base = "gcr.io/distroless/static:nonroot" }, "is not pinned"},
		{"a platform twice", func(s *Spec) { s.Binaries[1] = s.Binaries[0] }, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec
			s.Binaries = append([]Binary(nil), spec.Binaries...)
			tc.edit(&s)
			_, err := Build(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	built, err := Build(context.Background(), testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "image")
	for range 2 { // the second write replaces the first
		if err := WriteLayout(dir, built); err != nil {
			t.Fatal(err)
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.Index.Digest()
	if len(m.Manifests) != 3 || m.Manifests[0].Digest != want || m.Manifests[0].Annotations[annRefName] != testVersion {
		t.Fatalf("index.json lists %+v, want the index tagged %s and 2 SBOMs", m.Manifests, testVersion)
	}
	for i, pi := range built.Platforms {
		d := m.Manifests[i+1]
		sd, _ := pi.SBOM.Digest()
		if d.Digest != sd || d.ArtifactType != cycloneDXType {
			t.Errorf("index.json entry %d: %+v, want the %s SBOM %s", i+1, d, pi.Platform, sd)
		}
		// Every blob is in the layout: the image reads back whole.
		idx, err := top.ImageIndex(want)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := pi.Image.Digest()
		img, err := idx.Image(id)
		if err != nil {
			t.Fatal(err)
		}
		if files := flatten(t, img); len(files["aws-auth-webhook"].data) == 0 {
			t.Errorf("%s: the layout's image has no binary", pi.Platform)
		}
	}

	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(other, built); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("writing over a folder that is not a layout: %v", err)
	}
}

// TestPushAndBase pushes to a registry (go-containerregistry's, in
// process), finds the SBOMs through the referrers API, then builds on the
// pushed image as a BASE pinned by digest.
func TestPushAndBase(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	spec := testSpec(t)
	built, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Push(context.Background(), host+"/team/aws-auth-webhook", built)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.Index.Digest()
	if ref.DigestStr() != want.String() {
		t.Fatalf("pushed %s, built %s", ref, want)
	}
	tagged, err := name.NewTag(host + "/team/aws-auth-webhook:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(tagged)
	if err != nil || desc.Digest != want {
		t.Fatalf("the version tag: %v %v, want %s", desc, err, want)
	}
	for _, pi := range built.Platforms {
		d, _ := pi.Image.Digest()
		refs, err := remote.Referrers(ref.Context().Digest(d.String()))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := refs.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		sd, _ := pi.SBOM.Digest()
		if len(rm.Manifests) != 1 || rm.Manifests[0].Digest != sd || rm.Manifests[0].ArtifactType != cycloneDXType {
			t.Errorf("%s: referrers of %s are %+v, want the SBOM %s", pi.Platform, d, rm.Manifests, sd)
		}
	}

	// The pushed image as a base: its layers, then the binary again.
	based := spec
	based.Base = ref.String()
	rebuilt, err := Build(context.Background(), based)
	if err != nil {
		t.Fatal(err)
	}
	for i, pi := range rebuilt.Platforms {
		baseImg := built.Platforms[i].Image
		bd, _ := baseImg.Digest()
		m, err := pi.Image.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		bm, _ := baseImg.Manifest()
		if len(m.Layers) != len(bm.Layers)+1 || m.Layers[0].Digest != bm.Layers[0].Digest {
			t.Errorf("%s: %d layers, want the base's %d and the binary", pi.Platform, len(m.Layers), len(bm.Layers))
		}
		if m.Annotations[annBaseDigest] != bd.String() || m.Annotations[annBaseName] != ref.String() || pi.BaseDigest != bd.String() {
			t.Errorf("%s: base annotations %v, want %s@%s", pi.Platform, m.Annotations, ref, bd)
		}
		cf, _ := pi.Image.ConfigFile()
		if cf.Config.User != imageUser || cf.Config.Entrypoint[0] != entrypoint {
			t.Errorf("%s: on a base, runs as %q: %v", pi.Platform, cf.Config.User, cf.Config.Entrypoint)
		}
	}

	missing := spec
	missing.Base = host + "/team/aws-auth-webhook@sha256:" + strings.Repeat("0", 64)
	if _, err := Build(context.Background(), missing); err == nil || !strings.Contains(err.Error(), "BASE") {
		t.Fatalf("a base that does not exist: %v", err)
	}
}
