package main

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/uuid"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cycloneDXType is the media type of a CycloneDX JSON document: the SBOM
// layer's and the artifact's artifactType, which referrer queries filter on
// (`oras discover --artifact-type`, `regctl artifact list --filter-artifact-type`).
const cycloneDXType = "application/vnd.cyclonedx+json"

// sbomNamespace seeds the SBOM serial numbers (UUIDv5 over the binary's
// digest), so the same binary always has the same serial number.
var sbomNamespace = uuid.MustParse("8f0c2b6e-5a55-4c1c-9d5e-6b0c7a3e2a11")

// purl is a Package URL of a Go module: pkg:golang/<path>@<version>.
func purl(path, version string, qualifiers map[string]string) string {
	s := "pkg:golang/" + path
	if version != "" {
		s += "@" + url.PathEscape(version)
	}
	keys := make([]string, 0, len(qualifiers))
	for k := range qualifiers {
		keys = append(keys, k)
	}
	sort.Strings(keys) // purl qualifiers are sorted by key
	for i, k := range keys {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		s += sep + k + "=" + url.QueryEscape(qualifiers[k])
	}
	return s
}

// cycloneDX is the CycloneDX 1.6 SBOM of one platform's binary, made from
// the build information the Go toolchain embeds in it: the main module,
// every module linked in (with its go.sum hash), the Go standard library
// and the build settings. It returns the JSON and the component count.
func cycloneDX(info *buildinfo.BuildInfo, binary []byte, spec Spec, p v1.Platform) ([]byte, int, error) {
	sum := sha256.Sum256(binary)
	digest := hex.EncodeToString(sum[:])
	mainRef := purl(info.Main.Path, spec.Version, map[string]string{"type": "module", "goos": p.OS, "goarch": p.Architecture})
	var props []cdx.Property
	for _, s := range info.Settings {
		props = append(props, cdx.Property{Name: "go:build:" + s.Key, Value: s.Value})
	}
	props = append(props, cdx.Property{Name: "oci:platform", Value: p.String()})
	main := cdx.Component{
		BOMRef: mainRef, Type: cdx.ComponentTypeApplication,
		Name: "aws-auth-webhook", Version: spec.Version, PackageURL: mainRef,
		Description: "the aws-auth-webhook binary, " + entrypoint + " in the image",
		Hashes:      &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: digest}},
		Properties:  &props,
	}
	if spec.Source != "" {
		refs := []cdx.ExternalReference{{Type: cdx.ERTypeVCS, URL: spec.Source}}
		if spec.Revision != "" {
			refs[0].Comment = "revision " + spec.Revision
		}
		main.ExternalReferences = &refs
	}

	goVersion := strings.TrimPrefix(info.GoVersion, "go")
	stdRef := purl("stdlib", goVersion, nil)
	components := []cdx.Component{{
		BOMRef: stdRef, Type: cdx.ComponentTypeLibrary, Name: "stdlib", Version: info.GoVersion,
		PackageURL: stdRef, Description: "the Go standard library and runtime",
	}}
	deps := []string{stdRef}
	for _, d := range info.Deps {
		m := d
		var mprops []cdx.Property
		if d.Replace != nil {
			m = d.Replace
			mprops = append(mprops, cdx.Property{Name: "go:module:replaces", Value: d.Path + "@" + d.Version})
		}
		if m.Version == "" || m.Version == "(devel)" {
			return nil, 0, fmt.Errorf("module %s has no version in the build information: the SBOM would not say what is inside", m.Path)
		}
		if m.Sum != "" {
			mprops = append(mprops, cdx.Property{Name: "go:module:sum", Value: m.Sum})
		}
		ref := purl(m.Path, m.Version, map[string]string{"type": "module"})
		c := cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: m.Path, Version: m.Version, PackageURL: ref}
		if len(mprops) > 0 {
			c.Properties = &mprops
		}
		components = append(components, c)
		deps = append(deps, ref)
	}

	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid.NewSHA1(sbomNamespace, []byte(digest+" "+spec.Version)).String()
	bom.Metadata = &cdx.Metadata{
		Timestamp: spec.Created.Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "aws-auth-webhook e2e/tools/image",
			Description: "make image: the SBOM is read from the Go build information embedded in the binary",
		}}},
		Component: &main,
	}
	bom.Components = &components
	bom.Dependencies = &[]cdx.Dependency{{Ref: mainRef, Dependencies: &deps}}
	var buf bytes.Buffer
	if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), len(components), nil
}

// emptyConfig is the OCI empty descriptor's content: the config of an
// artifact manifest.
var emptyConfig = []byte("{}")

// artifact is an OCI 1.1 artifact manifest (one layer, the empty config,
// a subject) as a v1.Image, so go-containerregistry writes it to a layout
// and pushes it like any image.
type artifact struct {
	manifest []byte
	layer    v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	if cd, _, err := v1.SHA256(bytes.NewReader(emptyConfig)); err == nil && cd == h {
		return static.NewLayer(emptyConfig, types.OCIEmptyJSON), nil
	}
	return nil, fmt.Errorf("the SBOM artifact has no blob %s", h)
}

// sbomArtifact attaches bom to subject as OCI 1.1 tools find it: a
// manifest with artifactType CycloneDX and a subject field, which a
// registry lists under GET /v2/<repo>/referrers/<subject digest> (or,
// without the referrers API, go-containerregistry keeps the fallback tag
// sha256-<digest> up to date), and which an OCI layout lists in
// index.json beside the image.
func sbomArtifact(bom []byte, subject v1.Descriptor, created time.Time, p v1.Platform) (v1.Image, error) {
	layer := static.NewLayer(bom, cycloneDXType)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	cd, csize, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  cycloneDXType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: cd, Size: csize, Data: emptyConfig},
		Layers: []v1.Descriptor{{MediaType: cycloneDXType, Digest: ld, Size: int64(len(bom)),
			Annotations: map[string]string{annTitle: "aws-auth-webhook-" + p.OS + "-" + p.Architecture + ".cdx.json"}}},
		Subject: &subject,
		Annotations: map[string]string{
			annCreated:     created.Format(time.RFC3339),
			annDescription: "CycloneDX SBOM of aws-auth-webhook for " + p.String(),
		},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, layer: layer})
}
