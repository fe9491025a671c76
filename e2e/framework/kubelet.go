//go:build e2e

package framework

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// KubeletOptions tune StartFakeKubelet.
type KubeletOptions struct {
	// Namespace: only pods of this namespace are run.
	Namespace string
	// NodeName of the Node the kubelet registers; default "e2e-node-1".
	NodeName string
	// PodIPs are the addresses handed to pods, one per pod; the test put
	// them on the namespace's lo.
	PodIPs []string
	// Binaries maps an image repository (the image without its tag or
	// digest) to the host binary that is its entrypoint.
	Binaries map[string]string
	// Images maps an image repository to an image (LoadImage) that the
	// kubelet unpacks per pod and runs as a container runtime would: the
	// entrypoint and cmd from the image unless the container overrides
	// them, chrooted into the unpacked filesystem, as the image's USER
	// unless the pod's securityContext sets another, with the volumes
	// and the ServiceAccount token mounted inside.
	Images map[string]*Image
	// Env is added to every container's environment (what a mutating
	// webhook such as EKS Pod Identity's would inject: AWS endpoints and
	// credentials, here the emulator's).
	Env []string
}

// FakeKubelet does, for the pods of one namespace, what a kubelet would do
// on a node, with host processes instead of containers:
//   - registers a Ready Node;
//   - binds every unscheduled pod to it (pods/binding; the test runs no
//     scheduler);
//   - waits, like a pod in ContainerCreating, until the Secrets of its
//     secret volumes exist, then writes them into a folder per volume the
//     way the kubelet does (timestamped folder, ..data symlink swapped
//     atomically, key symlinks through ..data) and keeps them in sync when
//     the Secret changes;
//   - runs the container: the binary mapped from its image, with the
//     pod's args (volume mount paths rewritten to the host folders), the
//     env it declares (values and fieldRefs), as its runAsUser/runAsGroup
//     (setpriv), inside the namespace, with a kubeconfig holding a token
//     from the TokenRequest API for the pod's ServiceAccount, bound to the
//     pod (in place of the projected token volume: the binary reads
//     KUBECONFIG);
//   - reports the pod Running with its pod IP, and Ready once the
//     container's HTTP readiness probe answers 200, so the EndpointSlice
//     controller publishes it and its Deployment goes Available;
//   - on deletion stops the process (SIGTERM) and removes the pod.
//
// A container that exits on its own is a test failure.
type FakeKubelet struct {
	c    *Cluster
	t    testing.TB
	opts KubeletOptions

	mu     sync.Mutex
	runs   map[types.UID]*podRun
	usedIP map[string]bool
	notes  map[string]bool // log lines said once
	// cannotStart: pods whose container failed to start from its image.
	cannotStart map[types.UID]bool

	cancel context.CancelFunc
	done   chan struct{}
}

type podRun struct {
	name, ip, dir string
	root          string // the unpacked image (image mode), else ""
	uid           types.UID
	proc          *Process
	started       time.Time
	ready         bool
	secrets       map[string]*secretVolume // by volume name
	failed        bool
}

type secretVolume struct {
	secret, dir     string
	mode            os.FileMode
	items           []corev1.KeyToPath
	resourceVersion string
}

// StartFakeKubelet registers the Node and starts the kubelet loop; it stops
// (and with it every process it started) when the test ends.
func StartFakeKubelet(t testing.TB, c *Cluster, opts KubeletOptions) *FakeKubelet {
	t.Helper()
	if opts.NodeName == "" {
		opts.NodeName = "e2e-node-1"
	}
	k := &FakeKubelet{c: c, t: t, opts: opts, runs: map[types.UID]*podRun{}, usedIP: map[string]bool{},
		notes: map[string]bool{}, cannotStart: map[types.UID]bool{}, done: make(chan struct{})}
	k.registerNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go k.loop(ctx)
	t.Cleanup(k.stop)
	return k
}

// Process returns the process running pod name's container, or nil.
func (k *FakeKubelet) Process(pod string) *Process {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.runs {
		if r.name == pod {
			return r.proc
		}
	}
	return nil
}

func (k *FakeKubelet) stop() {
	k.cancel()
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	for uid, r := range k.runs {
		r.proc.StopWith(k.t.Logf)
		if k.t.Failed() {
			k.t.Logf("----- pod %s (pid %d): last lines of %s -----\n%s", r.name, r.proc.Pid(), r.proc.LogPath, r.proc.Tail(60))
		}
		delete(k.runs, uid)
	}
}

func (k *FakeKubelet) registerNode(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.opts.NodeName, Labels: map[string]string{
		"kubernetes.io/hostname": k.opts.NodeName, "kubernetes.io/os": "linux",
	}}}
	nodes := k.c.Clientset.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering Node %s: %v", k.opts.NodeName, err)
	}
	// Controllers (taints, TTL annotation) update a new Node at once.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, k.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "fake kubelet", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: k.opts.NodeName}},
			NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.1", OperatingSystem: "linux", Architecture: runtime.GOARCH},
		}
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("Node %s status: %v", k.opts.NodeName, err)
	}
}

func (k *FakeKubelet) logOnce(key, format string, args ...any) {
	k.mu.Lock()
	said := k.notes[key]
	k.notes[key] = true
	k.mu.Unlock()
	if !said {
		k.t.Logf("fake kubelet: "+format, args...)
	}
}

func (k *FakeKubelet) loop(ctx context.Context) {
	defer close(k.done)
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sync is one pass over the namespace's pods. API errors are retried on the
// next pass.
func (k *FakeKubelet) sync(ctx context.Context) {
	pods, err := k.c.Clientset.CoreV1().Pods(k.opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		if ctx.Err() == nil {
			k.logOnce("list:"+err.Error(), "listing pods: %v", err)
		}
		return
	}
	seen := map[types.UID]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		seen[pod.UID] = true
		if err := k.syncPod(ctx, pod); err != nil && ctx.Err() == nil {
			k.logOnce(string(pod.UID)+err.Error(), "pod %s: %v (retrying)", pod.Name, err)
		}
	}
	// Pods gone without a graceful deletion (grace 0): stop their process.
	k.mu.Lock()
	var gone []*podRun
	for uid, r := range k.runs {
		if !seen[uid] {
			gone = append(gone, r)
			delete(k.runs, uid)
			delete(k.usedIP, r.ip)
		}
	}
	k.mu.Unlock()
	for _, r := range gone {
		r.proc.StopWith(k.t.Logf)
	}
}

func (k *FakeKubelet) run(uid types.UID) *podRun {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.runs[uid]
}

func (k *FakeKubelet) syncPod(ctx context.Context, pod *corev1.Pod) error {
	pods := k.c.Clientset.CoreV1().Pods(pod.Namespace)
	r := k.run(pod.UID)
	switch {
	case pod.DeletionTimestamp != nil:
		if r != nil {
			start := time.Now()
			r.proc.StopWith(k.t.Logf)
			k.t.Logf("fake kubelet: pod %s deleted: container (pid %d) stopped in %v: %v", pod.Name, r.proc.Pid(),
				time.Since(start).Round(time.Millisecond), exitString(r.proc.ExitErr()))
			k.mu.Lock()
			delete(k.runs, pod.UID)
			delete(k.usedIP, r.ip)
			k.mu.Unlock()
		}
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0),
			Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err

	case pod.Spec.NodeName == "":
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: k.opts.NodeName},
		}, metav1.CreateOptions{})
		if err == nil {
			k.t.Logf("fake kubelet: bound pod %s to node %s", pod.Name, k.opts.NodeName)
		}
		return err

	case pod.Spec.NodeName != k.opts.NodeName:
		return nil

	case r == nil:
		k.mu.Lock()
		failed := k.cannotStart[pod.UID]
		k.mu.Unlock()
		if failed {
			return nil
		}
		return k.startPod(ctx, pod)
	}

	if r.failed {
		return nil
	}
	if !r.proc.Alive() {
		r.failed = true
		k.t.Errorf("fake kubelet: the container of pod %s (pid %d) exited on its own: %v\n%s",
			pod.Name, r.proc.Pid(), exitString(r.proc.ExitErr()), r.proc.Tail(40))
		return nil
	}
	if err := k.syncSecrets(ctx, pod, r); err != nil {
		return err
	}
	if !r.ready {
		ok, err := k.probe(ctx, pod, r)
		if err != nil {
			return err
		}
		if ok {
			if err := k.updateStatus(ctx, pod, r, true); err != nil {
				return err
			}
			r.ready = true
			k.t.Logf("fake kubelet: pod %s Ready (%s), %v after its container started",
				pod.Name, r.ip, time.Since(r.started).Round(time.Millisecond))
		}
	}
	return nil
}

// startPod mounts the volumes, then runs the pod's single container.
func (k *FakeKubelet) startPod(ctx context.Context, pod *corev1.Pod) error {
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 0 {
		return fmt.Errorf("the fake kubelet runs pods of exactly one container, no init containers")
	}
	ctr := pod.Spec.Containers[0]
	image, digest := ctr.Image, ""
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image, digest = image[:i], image[i+1:]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	img := k.opts.Images[image]
	bin, ok := k.opts.Binaries[image]
	if !ok && img == nil {
		return fmt.Errorf("no binary or image for %s", ctr.Image)
	}
	// A pull by digest finds the index or the platform image, nothing else.
	if img != nil && digest != "" && digest != img.IndexDigest.String() && digest != img.Digest.String() {
		return fmt.Errorf("image %s not found: the layout %s holds index %s (%s: %s)", ctr.Image, img.Layout,
			img.IndexDigest, img.Platform, img.Digest)
	}

	// Volumes: a pod stays in ContainerCreating until its Secrets exist.
	r := &podRun{name: pod.Name, uid: pod.UID, secrets: map[string]*secretVolume{}}
	for _, v := range pod.Spec.Volumes {
		if v.Secret == nil {
			continue // the projected token volume: replaced by KUBECONFIG below
		}
		if _, err := k.c.Clientset.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				k.logOnce("wait:"+string(pod.UID)+v.Name, "pod %s waits for Secret %s (volume %s)", pod.Name, v.Secret.SecretName, v.Name)
				return nil
			}
			return err
		}
		mode := os.FileMode(0o644)
		if v.Secret.DefaultMode != nil {
			mode = os.FileMode(*v.Secret.DefaultMode)
		}
		r.secrets[v.Name] = &secretVolume{secret: v.Secret.SecretName, mode: mode, items: v.Secret.Items}
	}

	k.mu.Lock()
	for _, ip := range k.opts.PodIPs {
		if !k.usedIP[ip] {
			r.ip = ip
			k.usedIP[ip] = true
			break
		}
	}
	k.mu.Unlock()
	if r.ip == "" {
		return fmt.Errorf("no free pod IP (have %v)", k.opts.PodIPs)
	}
	release := func() {
		k.mu.Lock()
		delete(k.usedIP, r.ip)
		k.mu.Unlock()
	}

	r.dir = filepath.Join(k.c.Dir, "pods", string(pod.UID))
	if err := os.MkdirAll(filepath.Join(r.dir, "volumes"), 0o755); err != nil {
		release()
		return err
	}
	for name, sv := range r.secrets {
		sv.dir = filepath.Join(r.dir, "volumes", name)
	}
	if img != nil {
		if err := k.prepareRoot(pod, ctr, img, r); err != nil {
			release()
			return err
		}
	}
	if err := k.syncSecrets(ctx, pod, r); err != nil {
		release()
		return err
	}

	// The ServiceAccount token, bound to the pod, as the kubelet requests it.
	tr, err := k.c.Clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		}}, metav1.CreateOptions{})
	if err != nil {
		release()
		return fmt.Errorf("TokenRequest for ServiceAccount %s: %w", pod.Spec.ServiceAccountName, err)
	}
	var argv, env []string
	opts := ProcessOptions{Dir: r.dir}
	if img != nil {
		// In-cluster configuration, as the projected token volume and the
		// kubernetes Service's env give it to every pod.
		if err := k.mountServiceAccount(pod, r, tr.Status.Token); err != nil {
			release()
			return err
		}
		if argv, env, opts, err = k.imageCommand(pod, ctr, img, r); err != nil {
			release()
			return err
		}
	} else {
		tokenFile, kubeconfig := filepath.Join(r.dir, "token"), filepath.Join(r.dir, "kubeconfig")
		if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o644); err != nil {
			release()
			return err
		}
		if err := k.c.TokenKubeconfig(kubeconfig, tokenFile); err != nil {
			release()
			return err
		}
		if err := os.Chmod(kubeconfig, 0o644); err != nil {
			release()
			return err
		}
		if argv, env, err = k.containerCommand(pod, ctr, bin, r); err != nil {
			release()
			return err
		}
		env = append(CleanEnv(), append(env, "KUBECONFIG="+kubeconfig)...)
	}
	opts.Env = env
	proc, err := k.c.NS.StartProcess(k.c.LogDir, "pod-"+pod.Name, opts, argv...)
	if err != nil && img != nil {
		// The image cannot run this container (no such entrypoint, not
		// executable): the runtime's CreateContainerError, a failure, not
		// something a retry fixes.
		release()
		k.mu.Lock()
		k.cannotStart[pod.UID] = true
		k.mu.Unlock()
		k.t.Errorf("fake kubelet: pod %s: the container cannot start from image %s: %v", pod.Name, ctr.Image, err)
		return nil
	}
	if err != nil {
		release()
		return err
	}
	r.proc, r.started = proc, time.Now()
	k.mu.Lock()
	k.runs[pod.UID] = r
	k.mu.Unlock()
	k.t.Logf("fake kubelet: pod %s: container %s started as pid %d on %s: %s", pod.Name, ctr.Name, proc.Pid(), r.ip,
		strings.Join(argv, " "))
	return k.updateStatus(ctx, pod, r, false)
}

// containerCommand is the host command line of the container: the binary
// and the pod's args (volume mount paths pointing at the host folders),
// dropping to the pod's user through setpriv; and its declared env.
func (k *FakeKubelet) containerCommand(pod *corev1.Pod, ctr corev1.Container, bin string, r *podRun) ([]string, []string, error) {
	if len(ctr.Command) > 0 {
		return nil, nil, fmt.Errorf("container %s sets command; the fake kubelet runs the image's entrypoint", ctr.Name)
	}
	if len(ctr.EnvFrom) > 0 {
		return nil, nil, fmt.Errorf("container %s uses envFrom, which the fake kubelet does not support", ctr.Name)
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		if sv, ok := r.secrets[m.Name]; ok {
			if m.SubPath != "" {
				return nil, nil, fmt.Errorf("volume mount %s uses subPath", m.Name)
			}
			mounts[m.MountPath] = sv.dir
		}
	}
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	args := make([]string, 0, len(ctr.Args))
	for _, a := range ctr.Args {
		for _, p := range paths {
			a = strings.ReplaceAll(a, p, mounts[p])
		}
		args = append(args, a)
	}

	env, err := k.containerEnv(pod, ctr, r)
	if err != nil {
		return nil, nil, err
	}
	env = append(env, k.opts.Env...)

	argv := append([]string{bin}, args...)
	uid, gid := runAs(pod, ctr)
	if uid != nil && *uid != 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			return nil, nil, fmt.Errorf("the pod runs as user %d: the fake kubelet needs util-linux's setpriv: %w", *uid, err)
		}
		g := *uid
		if gid != nil {
			g = *gid
		}
		argv = append([]string{setpriv, "--reuid=" + strconv.FormatInt(*uid, 10), "--regid=" + strconv.FormatInt(g, 10),
			"--clear-groups", "--pdeathsig=keep", "--"}, argv...)
	}
	return argv, env, nil
}

// containerEnv is the env the container declares (values and fieldRefs).
func (k *FakeKubelet) containerEnv(pod *corev1.Pod, ctr corev1.Container, r *podRun) ([]string, error) {
	if len(ctr.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s uses envFrom, which the fake kubelet does not support", ctr.Name)
	}
	var env []string
	for _, e := range ctr.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("env %s: only fieldRef is supported", e.Name)
			}
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.namespace":
				v = pod.Namespace
			case "metadata.name":
				v = pod.Name
			case "metadata.uid":
				v = string(pod.UID)
			case "spec.nodeName":
				v = pod.Spec.NodeName
			case "spec.serviceAccountName":
				v = pod.Spec.ServiceAccountName
			case "status.podIP":
				v = r.ip
			default:
				return nil, fmt.Errorf("env %s: fieldRef %s is not supported", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// prepareRoot unpacks img into the pod's folder and points each secret
// volume at its mount path inside it. With readOnlyRootFilesystem, every
// folder of the image loses its write bits, which for the non-root user
// the container runs as is what a read-only mount is.
func (k *FakeKubelet) prepareRoot(pod *corev1.Pod, ctr corev1.Container, img *Image, r *podRun) error {
	r.root = filepath.Join(r.dir, "rootfs")
	start := time.Now()
	if err := img.Unpack(r.root); err != nil {
		return fmt.Errorf("unpacking image %s: %w", ctr.Image, err)
	}
	if sc := ctr.SecurityContext; sc != nil && ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		err := filepath.WalkDir(r.root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, fi.Mode()&^0o222)
		})
		if err != nil {
			return err
		}
	}
	mounted := map[string]bool{}
	for _, m := range ctr.VolumeMounts {
		sv, ok := r.secrets[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" || mounted[m.Name] {
			return fmt.Errorf("volume mount %s: subPath and repeated mounts are not supported", m.Name)
		}
		mounted[m.Name] = true
		sv.dir = filepath.Join(r.root, filepath.FromSlash(m.MountPath))
	}
	k.t.Logf("fake kubelet: pod %s: unpacked image %s (%s, %s) in %v", pod.Name, ctr.Image, img.Platform, img.Digest,
		time.Since(start).Round(time.Millisecond))
	return nil
}

// mountServiceAccount writes what the kubelet's projected volume holds —
// the pod's bound token, the cluster CA, the namespace — where client-go's
// in-cluster configuration reads it, unless the pod opts out.
func (k *FakeKubelet) mountServiceAccount(pod *corev1.Pod, r *podRun, token string) error {
	if !ptr.Deref(pod.Spec.AutomountServiceAccountToken, true) {
		return nil
	}
	dir := filepath.Join(r.root, "var", "run", "secrets", "kubernetes.io", "serviceaccount")
	return atomicWrite(dir, map[string][]byte{
		"token": []byte(token), "ca.crt": k.c.CAPEM, "namespace": []byte(pod.Namespace),
	}, 0o644)
}

// imageCommand is how a container runtime runs ctr from img: the
// container's command replaces the image's entrypoint (and drops its cmd),
// its args replace the cmd; the image's env comes first; it runs chrooted
// into the unpacked image, in its working folder, as the pod's
// runAsUser/runAsGroup or else the image's USER — refused, as the kubelet
// refuses it, when runAsNonRoot is set and that user is root or a name.
func (k *FakeKubelet) imageCommand(pod *corev1.Pod, ctr corev1.Container, img *Image, r *podRun) ([]string, []string, ProcessOptions, error) {
	var opts ProcessOptions
	argv := append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	switch {
	case len(ctr.Command) > 0:
		argv = append(append([]string{}, ctr.Command...), ctr.Args...)
	case len(ctr.Args) > 0:
		argv = append(append([]string{}, img.Config.Entrypoint...), ctr.Args...)
	}
	if len(argv) == 0 {
		return nil, nil, opts, fmt.Errorf("image %s has no entrypoint or cmd, and container %s sets no command", ctr.Image, ctr.Name)
	}
	if !strings.HasPrefix(argv[0], "/") {
		return nil, nil, opts, fmt.Errorf("container %s runs %q: the fake kubelet resolves absolute paths only", ctr.Name, argv[0])
	}

	imgUID, imgGID, numeric, err := ImageUser(r.root, img.Config.User)
	if err != nil {
		return nil, nil, opts, err
	}
	uid, gid := imgUID, imgGID
	podUID, podGID := runAs(pod, ctr)
	if podUID != nil {
		uid = *podUID
		if podGID == nil {
			gid = uid // the runtime's default group for a numeric user with no passwd entry
			if fields, err := lookupUID(filepath.Join(r.root, "etc", "passwd"), uid); err == nil {
				gid, _ = strconv.ParseInt(fields[3], 10, 64)
			}
		}
	}
	if podGID != nil {
		gid = *podGID
	}
	if runAsNonRoot(pod, ctr) {
		switch {
		case podUID == nil && !numeric:
			return nil, nil, opts, fmt.Errorf("container %s has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", ctr.Name, img.Config.User)
		case uid == 0:
			return nil, nil, opts, fmt.Errorf("container %s has runAsNonRoot and image will run as root", ctr.Name)
		}
	}
	var groups []uint32
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, g := range sc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
		if sc.FSGroup != nil {
			groups = append(groups, uint32(*sc.FSGroup))
		}
	}

	env := append([]string{}, img.Config.Env...)
	cenv, err := k.containerEnv(pod, ctr, r)
	if err != nil {
		return nil, nil, opts, err
	}
	env = append(env, cenv...)
	host, port, err := net.SplitHostPort(strings.TrimPrefix(k.c.Server, "https://"))
	if err != nil {
		return nil, nil, opts, fmt.Errorf("apiserver address %s: %w", k.c.Server, err)
	}
	env = append(env, "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)
	env = append(env, k.opts.Env...)

	opts.Root = r.root
	opts.Dir = img.Config.WorkingDir
	if opts.Dir == "" {
		opts.Dir = "/"
	}
	opts.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	return argv, env, opts, nil
}

func runAsNonRoot(pod *corev1.Pod, ctr corev1.Container) bool {
	v := false
	if sc := pod.Spec.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		v = *sc.RunAsNonRoot
	}
	if sc := ctr.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		v = *sc.RunAsNonRoot
	}
	return v
}

func runAs(pod *corev1.Pod, ctr corev1.Container) (uid, gid *int64) {
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := ctr.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

// syncSecrets writes each secret volume whose Secret changed since the last
// write, the kubelet's way: the files go into a new timestamped folder,
// the ..data symlink is replaced by a rename (atomic), and each key is a
// symlink through ..data, so a reader sees the old set or the new one.
func (k *FakeKubelet) syncSecrets(ctx context.Context, pod *corev1.Pod, r *podRun) error {
	for name, sv := range r.secrets {
		s, err := k.c.Clientset.CoreV1().Secrets(pod.Namespace).Get(ctx, sv.secret, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				k.logOnce("gone:"+string(pod.UID)+sv.secret+sv.resourceVersion, "pod %s: Secret %s is gone; volume %s keeps its files",
					pod.Name, sv.secret, name)
				continue
			}
			return err
		}
		if s.ResourceVersion == sv.resourceVersion {
			continue
		}
		files := map[string][]byte{}
		if len(sv.items) == 0 {
			for key, v := range s.Data {
				files[key] = v
			}
		} else {
			for _, it := range sv.items {
				v, ok := s.Data[it.Key]
				if !ok {
					return fmt.Errorf("secret %s has no key %s", sv.secret, it.Key)
				}
				files[it.Path] = v
			}
		}
		if err := atomicWrite(sv.dir, files, sv.mode); err != nil {
			return fmt.Errorf("volume %s: %w", name, err)
		}
		if sv.resourceVersion != "" {
			k.t.Logf("fake kubelet: pod %s: volume %s updated from Secret %s (resourceVersion %s -> %s)",
				pod.Name, name, sv.secret, sv.resourceVersion, s.ResourceVersion)
		}
		sv.resourceVersion = s.ResourceVersion
	}
	return nil
}

func atomicWrite(dir string, files map[string][]byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.")) // like the kubelet's
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if strings.Contains(name, "/") {
			return fmt.Errorf("nested key path %s is not supported", name)
		}
		if err := os.WriteFile(filepath.Join(ts, name), data, mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(ts, name), mode); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// probe runs the container's HTTP readiness probe against the pod IP.
func (k *FakeKubelet) probe(ctx context.Context, pod *corev1.Pod, r *podRun) (bool, error) {
	ctr := pod.Spec.Containers[0]
	p := ctr.ReadinessProbe
	if p == nil {
		return true, nil
	}
	if p.HTTPGet == nil {
		return false, fmt.Errorf("container %s: only HTTP readiness probes are supported", ctr.Name)
	}
	port, err := containerPort(ctr, p.HTTPGet.Port)
	if err != nil {
		return false, err
	}
	scheme := "http"
	if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: k.c.NS.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(r.ip, strconv.Itoa(port)), p.HTTPGet.Path), nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, nil // not listening yet
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400, nil
}

func containerPort(ctr corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range ctr.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %s", ctr.Name, p.StrVal)
}

// updateStatus reports the pod Running on its pod IP, Ready or not.
func (k *FakeKubelet) updateStatus(ctx context.Context, pod *corev1.Pod, r *podRun, ready bool) error {
	pods := k.c.Clientset.CoreV1().Pods(pod.Namespace)
	cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.UID != pod.UID {
		return fmt.Errorf("pod %s was replaced", pod.Name)
	}
	now := metav1.Now()
	started := metav1.NewTime(r.started)
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	cond := func(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
		for _, old := range cur.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	ctr := cur.Spec.Containers[0]
	cur.Status.Phase = corev1.PodRunning
	cur.Status.PodIP, cur.Status.PodIPs = r.ip, []corev1.PodIP{{IP: r.ip}}
	cur.Status.StartTime = &started
	cur.Status.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, corev1.ConditionTrue),
		cond(corev1.PodInitialized, corev1.ConditionTrue),
		cond(corev1.PodReady, readyStatus),
		cond(corev1.ContainersReady, readyStatus),
		cond(corev1.PodScheduled, corev1.ConditionTrue),
	}
	cur.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image,
		ContainerID: fmt.Sprintf("fake://%d", r.proc.Pid()),
		Ready:       ready, Started: ptr.To(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
	}}
	_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}

func exitString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
