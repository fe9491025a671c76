//go:build e2e

package framework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Addresses inside a Cluster's network namespace. The apiserver and etcd
// listen on its loopback; pods get addresses from 10.244.0.0/16 (put on lo
// by the test), which EndpointSlices accept (they refuse 127.x).
const (
	ClusterAPIServerPort = 6443
	ClusterServiceCIDR   = "10.96.0.0/16"
	clusterEtcdClient    = "http://127.0.0.1:2379"
	clusterEtcdPeer      = "http://127.0.0.1:2380"
)

// ClusterOptions tune StartCluster.
type ClusterOptions struct {
	// Assets holds kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS);
	// default RequireAssets(t).
	Assets string
	// KubeControllerManager is the kube-controller-manager binary; default:
	// next to the file the assets' kube-apiserver links to (install.sh
	// builds them side by side, same version).
	KubeControllerManager string
	// AdminUser is the CN of the admin client certificate (group
	// system:masters); default "e2e-admin".
	AdminUser string
}

// Cluster is etcd + kube-apiserver + kube-controller-manager started by
// hand inside a network namespace of their own: unlike envtest, the
// controllers run (Deployments get pods, Services get EndpointSlices), and
// the apiserver routes a webhook's Service call to an endpoint
// (--enable-aggregator-routing), as it does in a cluster with no
// kube-proxy in the way. The test reaches it through NS.DialContext (the
// clients below do) or by running a binary with NS.Run.
type Cluster struct {
	NS *NetNS
	// Dir is the cluster's work folder (mode 0755, so a process running as
	// a non-root pod user can read what a kubelet would mount); PKI lives in
	// Dir/pki (0700), logs in Dir/logs.
	Dir, PKIDir, LogDir string
	Assets              string
	// Server is the apiserver URL inside the namespace.
	Server string
	// CAPEM is the cluster CA (apiserver serving certificate, client certs).
	CAPEM []byte
	// AdminKubeconfig is a kubeconfig file for the admin (system:masters).
	AdminKubeconfig string
	AdminUser       string
	// Config is the admin rest.Config; its Dial goes through the namespace.
	Config    *rest.Config
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface

	ca *certKey
}

type certKey struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// StartCluster creates a network namespace and starts etcd, kube-apiserver
// (ready) and kube-controller-manager in it. Everything is stopped, and
// the namespace removed, when the test ends.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	RequireNetNSTools(t)
	if opts.Assets == "" {
		opts.Assets = RequireAssets(t)
	}
	if opts.KubeControllerManager == "" {
		apiserver, err := filepath.EvalSymlinks(filepath.Join(opts.Assets, "kube-apiserver"))
		if err != nil {
			t.Fatalf("resolving %s/kube-apiserver: %v", opts.Assets, err)
		}
		opts.KubeControllerManager = filepath.Join(filepath.Dir(apiserver), "kube-controller-manager")
	}
	if _, err := os.Stat(opts.KubeControllerManager); err != nil {
		t.Fatalf("kube-controller-manager: %v (e2e/tools/install.sh kube builds it beside kube-apiserver)", err)
	}
	if opts.AdminUser == "" {
		opts.AdminUser = "e2e-admin"
	}
	start := time.Now()

	// Not t.TempDir (0700): a pod's process may run as a non-root user.
	dir, err := os.MkdirTemp("", "aaw-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after every process is stopped
	c := &Cluster{Dir: dir, PKIDir: filepath.Join(dir, "pki"), LogDir: filepath.Join(dir, "logs"),
		Assets: opts.Assets, AdminUser: opts.AdminUser,
		Server: fmt.Sprintf("https://127.0.0.1:%d", ClusterAPIServerPort)}
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Mkdir(c.PKIDir, 0o700))
	must(t, os.Mkdir(c.LogDir, 0o755))

	c.NS = NewNetNS(t)
	c.writePKI(t)

	pki := func(name string) string { return filepath.Join(c.PKIDir, name) }
	env := ProcessOptions{Env: CleanEnv()}
	c.NS.Start(t, c.LogDir, "etcd", env, filepath.Join(c.Assets, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clusterEtcdClient, "--advertise-client-urls="+clusterEtcdClient,
		"--listen-peer-urls="+clusterEtcdPeer, "--initial-advertise-peer-urls="+clusterEtcdPeer,
		"--initial-cluster=default="+clusterEtcdPeer, "--unsafe-no-fsync=true", "--log-level=warn")
	apiserver := c.NS.Start(t, c.LogDir, "kube-apiserver", env, filepath.Join(c.Assets, "kube-apiserver"),
		"--etcd-servers="+clusterEtcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // 1.37 refuses a loopback advertise address otherwise
		fmt.Sprintf("--secure-port=%d", ClusterAPIServerPort),
		"--tls-cert-file="+pki("apiserver.crt"), "--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki("sa.pub"), "--service-account-signing-key-file="+pki("sa.key"),
		"--service-cluster-ip-range="+ClusterServiceCIDR,
		"--authorization-mode=RBAC",
		// Webhook (and aggregated API) calls through a Service go to an
		// endpoint of its EndpointSlice, not to the ClusterIP (no kube-proxy).
		"--enable-aggregator-routing=true",
		"--profiling=false")

	c.AdminKubeconfig = c.writeClientKubeconfig(t, "admin", opts.AdminUser, []string{"system:masters"})
	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c.Config = c.Dialing(cfg)
	if c.Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}

	// Ready, and kube-system created.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	for {
		_, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			_, err = c.Clientset.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
		}
		if err == nil {
			break
		}
		last = err
		select {
		case <-apiserver.Exited():
			t.Fatalf("kube-apiserver exited: %v\n%s", apiserver.ExitErr(), apiserver.Tail(30))
		case <-ctx.Done():
			t.Fatalf("kube-apiserver not ready within 60s: %v\n%s", last, apiserver.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}

	kcm := c.writeClientKubeconfig(t, "kube-controller-manager", "system:kube-controller-manager", []string{"system:masters"})
	c.NS.Start(t, c.LogDir, "kube-controller-manager", env, opts.KubeControllerManager,
		"--kubeconfig="+kcm, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+pki("sa.key"), "--root-ca-file="+pki("ca.crt"),
		// No kubelets post heartbeats: the node lifecycle controller would
		// taint and evict.
		"--controllers=*,-node-lifecycle-controller")
	t.Logf("cluster up in %v: etcd, kube-apiserver %s, kube-controller-manager in netns %s",
		time.Since(start).Round(time.Millisecond), c.Server, c.NS.Name)
	return c
}

// Dialing returns a copy of cfg whose connections are made inside the
// cluster's network namespace.
func (c *Cluster) Dialing(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Dial = c.NS.DialContext
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

// ClientKubeconfig writes a kubeconfig for a client certificate the
// cluster CA signs (CN user, O groups) and returns its path.
func (c *Cluster) ClientKubeconfig(t testing.TB, name, user string, groups ...string) string {
	t.Helper()
	return c.writeClientKubeconfig(t, name, user, groups)
}

// TokenKubeconfig writes a kubeconfig at path that authenticates with the
// bearer token in tokenFile (client-go re-reads it, as it does a projected
// token), against the apiserver inside the namespace.
func (c *Cluster) TokenKubeconfig(path, tokenFile string) error {
	return clientcmd.WriteToFile(c.kubeconfig(&clientcmdapi.AuthInfo{TokenFile: tokenFile}), path)
}

func (c *Cluster) kubeconfig(auth *clientcmdapi.AuthInfo) clientcmdapi.Config {
	return clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"e2e": {Server: c.Server, CertificateAuthorityData: c.CAPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"e2e": auth},
		Contexts:       map[string]*clientcmdapi.Context{"e2e": {Cluster: "e2e", AuthInfo: "e2e"}},
		CurrentContext: "e2e",
	}
}

func (c *Cluster) writeClientKubeconfig(t testing.TB, name, user string, groups []string) string {
	t.Helper()
	ck := c.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	path := filepath.Join(c.PKIDir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(c.kubeconfig(&clientcmdapi.AuthInfo{
		ClientCertificateData: ck.certPEM, ClientKeyData: ck.keyPEM,
	}), path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Kubectl runs the assets' kubectl as the admin inside the namespace.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.NS.Run(ctx, CleanEnv(), append([]string{filepath.Join(c.Assets, "kubectl"), "--kubeconfig=" + c.AdminKubeconfig}, args...)...)
}

// CleanEnv is the test's environment without what could point a child at
// another cluster or AWS account (KUBECONFIG, AWS_*), plus extra.
func CleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// --- PKI ----------------------------------------------------------------

func (c *Cluster) writePKI(t testing.TB) {
	t.Helper()
	ca := NewCA(t)
	c.ca = &certKey{cert: ca.cert, key: ca.key, certPEM: ca.PEM}
	c.CAPEM = c.ca.certPEM
	c.writeFile(t, "ca.crt", c.CAPEM)

	serving := c.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	})
	c.writeFile(t, "apiserver.crt", serving.certPEM)
	c.writeFile(t, "apiserver.key", serving.keyPEM)

	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	must(t, err)
	c.writeFile(t, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}))
	c.writeFile(t, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

func (c *Cluster) issue(t testing.TB, tmpl *x509.Certificate) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	must(t, err)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca.cert, &key.PublicKey, c.ca.key)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	return &certKey{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

func (c *Cluster) writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(c.PKIDir, name), data, 0o600))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
