package admission

import (
	"crypto/sha256"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	corev1 "k8s.io/api/core/v1"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// storedObjects remembers the last few oldObjects: the stored aws-auth
// comes with every request, byte for byte the same until an edit is
// admitted, and both handlers need it decoded and the validating one needs
// what the authenticator loads from it. Both are functions of the bytes
// alone, so they are kept by the bytes' SHA-256 and made once.
type storedObjects struct {
	mu  sync.Mutex
	lru *simplelru.LRU[[sha256.Size]byte, *storedObject]
}

// storedObject is one decoded oldObject; nothing changes it once made.
type storedObject struct {
	cm *corev1.ConfigMap

	loadOnce sync.Once
	loaded   *awsauth.Loaded
	matcher  *awsauth.Matcher
}

// maxStoredObjects is how many different oldObjects are kept: the stored
// version and the ones just before and after an edit. Each holds its
// ConfigMap and what the authenticator loads from it — a few MiB for an
// aws-auth at the 1 MiB limit.
const maxStoredObjects = 3

func newStoredObjects() *storedObjects {
	lru, _ := simplelru.NewLRU[[sha256.Size]byte, *storedObject](maxStoredObjects, nil)
	return &storedObjects{lru: lru}
}

// forget drops every object kept.
func (c *storedObjects) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// decode returns the oldObject raw decoded, from memory when the same
// bytes were decoded before.
func (c *storedObjects) decode(raw []byte) (*storedObject, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	sum := sha256.Sum256(raw)
	c.mu.Lock()
	o, ok := c.lru.Get(sum)
	c.mu.Unlock()
	if ok {
		return o, nil
	}
	cm, err := decodeConfigMap(raw)
	if err != nil {
		return nil, err
	}
	o = &storedObject{cm: cm}
	c.mu.Lock()
	c.lru.Add(sum, o)
	c.mu.Unlock()
	return o, nil
}

// load is what the authenticator loads from the object, made once.
func (o *storedObject) load(cache awsauth.ItemCache) *awsauth.Loaded {
	o.loadOnce.Do(func() {
		o.loaded = awsauth.LoadAsAuthenticatorCached(o.cm.Data, cache)
		o.matcher = o.loaded.Matcher()
	})
	return o.loaded
}
