//go:build e2e

package framework

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Image is the platform image for this machine out of an OCI image layout
// (what `make image` writes): the fake kubelet unpacks it per pod and runs
// its entrypoint inside, as a container runtime would.
type Image struct {
	// Layout is the OCI image layout folder.
	Layout string
	// Tag is the index's org.opencontainers.image.ref.name.
	Tag string
	// IndexDigest is the multi-platform index's digest; Digest the chosen
	// platform image's.
	IndexDigest, Digest v1.Hash
	// Platforms lists every platform of the index.
	Platforms []v1.Platform
	// Platform is the one chosen: linux/<this machine's GOARCH>.
	Platform v1.Platform
	// Config is how the image runs: entrypoint, cmd, env, user, workdir.
	Config v1.Config
	// Annotations of the index.
	Annotations map[string]string

	img v1.Image
}

// WebhookImageLayout is the OCI image layout the e2e tests run: the
// folder in AWS_AUTH_WEBHOOK_IMAGE, else image/ beside the binaries of
// AWS_AUTH_WEBHOOK_BIN (`make image` writes bin/image; `make e2e` builds
// it and sets the variable).
func WebhookImageLayout(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("AWS_AUTH_WEBHOOK_IMAGE")
	if dir == "" && os.Getenv("AWS_AUTH_WEBHOOK_BIN") != "" {
		dir = filepath.Join(os.Getenv("AWS_AUTH_WEBHOOK_BIN"), "image")
	}
	if dir == "" {
		t.Fatal("AWS_AUTH_WEBHOOK_IMAGE is not set: run `make image` and set it to bin/image (make e2e does both)")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatalf("%s is not an OCI image layout (%v): run `make image`", dir, err)
	}
	return dir
}

// LoadImage reads the layout's multi-platform index and picks the image
// for linux/GOARCH of this machine.
func LoadImage(t testing.TB, dir string) *Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("reading the image layout %s: %v", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img := &Image{Layout: dir, Platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	var index v1.ImageIndex
	for _, d := range tm.Manifests {
		if d.MediaType.IsIndex() {
			if index != nil {
				t.Fatalf("%s lists more than one image index", dir)
			}
			if index, err = top.ImageIndex(d.Digest); err != nil {
				t.Fatal(err)
			}
			img.IndexDigest, img.Tag = d.Digest, d.Annotations["org.opencontainers.image.ref.name"]
		}
	}
	if index == nil {
		t.Fatalf("%s holds no multi-platform image index", dir)
	}
	im, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img.Annotations = im.Annotations
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		img.Platforms = append(img.Platforms, *d.Platform)
		if d.Platform.OS == img.Platform.OS && d.Platform.Architecture == img.Platform.Architecture {
			img.Digest, img.Platform = d.Digest, *d.Platform
			if img.img, err = index.Image(d.Digest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if img.img == nil {
		t.Fatalf("the image index in %s has no image for %s (it has %v)", dir, img.Platform, img.Platforms)
	}
	cf, err := img.img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != img.Platform.OS || cf.Architecture != img.Platform.Architecture {
		t.Fatalf("the %s image's config says %s/%s", img.Platform, cf.OS, cf.Architecture)
	}
	img.Config = cf.Config
	return img
}

// Unpack writes the image's flattened filesystem (go-containerregistry's
// mutate.Extract: layers in order, whiteouts applied) into root, with the
// modes and owners the layers give.
func (i *Image) Unpack(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	rc := mutate.Extract(i.img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode // set after the files, so a read-only folder can be filled
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the image's layers: %w", err)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		dst := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := h.FileInfo().Mode()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{dst, mode})
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(dst, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeLink:
			target := filepath.Join(root, filepath.FromSlash(path.Clean("/"+h.Linkname)))
			if err := os.Link(target, dst); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: tar entry type %q is not supported", name, h.Typeflag)
		}
		if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	for j := len(dirs) - 1; j >= 0; j-- {
		if err := os.Chmod(dirs[j].path, dirs[j].mode); err != nil {
			return err
		}
	}
	return nil
}

// ImageUser resolves an image's USER ("uid", "uid:gid", "name" or
// "name:group", names from the unpacked /etc/passwd and /etc/group) as a
// container runtime does; empty is root. numeric says whether it was given
// as numbers (the kubelet can only check runAsNonRoot against those).
func ImageUser(root, user string) (uid, gid int64, numeric bool, err error) {
	if user == "" {
		return 0, 0, true, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	numeric = true
	if uid, err = strconv.ParseInt(u, 10, 64); err != nil {
		numeric = false
		fields, ferr := lookup(filepath.Join(root, "etc", "passwd"), u)
		if ferr != nil {
			return 0, 0, false, fmt.Errorf("image user %q: %w", user, ferr)
		}
		uid, _ = strconv.ParseInt(fields[2], 10, 64)
		gid, _ = strconv.ParseInt(fields[3], 10, 64)
	} else {
		gid = uid
		if fields, ferr := lookupUID(filepath.Join(root, "etc", "passwd"), uid); ferr == nil {
			gid, _ = strconv.ParseInt(fields[3], 10, 64)
		}
	}
	if hasGroup {
		if gid, err = strconv.ParseInt(g, 10, 64); err != nil {
			numeric = false
			fields, ferr := lookup(filepath.Join(root, "etc", "group"), g)
			if ferr != nil {
				return 0, 0, false, fmt.Errorf("image group %q: %w", user, ferr)
			}
			gid, _ = strconv.ParseInt(fields[2], 10, 64)
		}
	}
	return uid, gid, numeric, nil
}

// lookup returns the colon-separated fields of the line of file whose
// first field is name.
func lookup(file, name string) ([]string, error) {
	return scanColonFile(file, func(f []string) bool { return f[0] == name })
}

func lookupUID(file string, uid int64) ([]string, error) {
	return scanColonFile(file, func(f []string) bool { return len(f) > 2 && f[2] == strconv.FormatInt(uid, 10) })
}

func scanColonFile(file string, match func([]string) bool) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 4 && match(fields) {
			return fields, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("not in %s", file)
}
