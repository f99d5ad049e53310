// Command netpilot-kube-apiserver is a real, minimal Kubernetes API server for tests:
// the upstream k8s.io/apiextensions-apiserver (CRDs, custom resources, server-side apply,
// dry-run, strict field validation, OpenAPI + CEL validation) on an embedded etcd.
//
// It serves only apiextensions.k8s.io and the custom resources of the CRDs created in it;
// there is no core/v1 (no Namespaces, Secrets, Pods), no controllers and no admission
// webhooks. That is what `netpilot strimzi apply` needs: the Strimzi CRDs and their CRs.
//
// Authentication and authorization: the loopback bearer token (group system:masters, so
// allowed everything) is written into <data-dir>/kubeconfig; <data-dir>/anonymous.kubeconfig
// has no credentials, and anonymous requests are refused with 403 because no delegated
// authorizer is configured (only the system:masters group and the health paths are allowed).
//
// Usage: netpilot-kube-apiserver --data-dir DIR [--port N]
// Prints "READY https://127.0.0.1:<port>" on stdout once /healthz is ok; stops on SIGTERM.
// (/readyz never turns ok: its informer-sync check waits for core/v1 Services informers
// that have no core API server to list from; upstream's own fixtures wait on /healthz too.)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/klog/v2"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd data, serving certs and kubeconfigs (required)")
	port := flag.Int("port", 0, "secure port on 127.0.0.1 (0 = pick a free one)")
	verbosity := flag.String("v", "0", "klog verbosity")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "--data-dir is required")
		os.Exit(2)
	}
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", *verbosity)

	ctx := genericapiserver.SetupSignalContext()
	if err := run(ctx, *dataDir, *port); err != nil {
		fmt.Fprintf(os.Stderr, "netpilot-kube-apiserver: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dataDir string, port int) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}

	etcd, etcdURL, err := startEtcd(filepath.Join(dataDir, "etcd"))
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer etcd.Close()

	// The core-API / delegated authn kubeconfig is never used for anything that matters
	// (no Namespace lifecycle, no webhooks), but option validation needs one: point it at
	// a loopback address where nothing listens, as upstream's integration fixtures do.
	fake := filepath.Join(dataDir, "unused-core.kubeconfig")
	if err := os.WriteFile(fake, []byte(unusedKubeconfig), 0o600); err != nil {
		return err
	}

	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	fs := pflag.NewFlagSet("apiextensions", pflag.ContinueOnError)
	o.AddFlags(fs)
	args := []string{
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--cert-dir", filepath.Join(dataDir, "certs"),
		"--authentication-skip-lookup",
		"--authentication-kubeconfig", fake,
		"--kubeconfig", fake,
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins", "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Own the listener so the port is known before serving and never raced for.
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	o.RecommendedOptions.SecureServing.Listener = listener
	o.RecommendedOptions.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	// No delegated authorizer: system:masters (the loopback token) may do anything,
	// everyone else gets a real 403 from the API server's authorization filter.
	o.RecommendedOptions.Authorization.RemoteKubeConfigFileOptional = true
	if err := o.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	config, err := o.Config()
	if err != nil {
		return err
	}
	server, err := config.Complete().New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	loopback := server.GenericAPIServer.LoopbackClientConfig
	serverURL := fmt.Sprintf("https://127.0.0.1:%d", o.RecommendedOptions.SecureServing.BindPort)
	caFile := filepath.Join(dataDir, "certs", "apiserver.crt")

	errCh := make(chan error, 1)
	go func() { errCh <- server.GenericAPIServer.PrepareRun().RunWithContext(ctx) }()

	if err := waitReady(ctx, serverURL, caFile, errCh); err != nil {
		return err
	}
	if err := writeKubeconfig(filepath.Join(dataDir, "kubeconfig"), serverURL, caFile, loopback.BearerToken); err != nil {
		return err
	}
	if err := writeKubeconfig(filepath.Join(dataDir, "anonymous.kubeconfig"), serverURL, caFile, ""); err != nil {
		return err
	}
	fmt.Printf("READY %s\n", serverURL)
	return <-errCh
}

func startEtcd(dir string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	clientURL, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}
	peerURL, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("etcd not ready after 60s")
	}
	return e, clientURL.String(), nil
}

func freeLoopbackURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	return url.Parse("http://" + addr)
}

func waitReady(ctx context.Context, serverURL, caFile string, errCh <-chan error) error {
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errCh:
			return fmt.Errorf("server stopped before ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			continue // serving certs are written during Config(); should exist already
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
		}}
		resp, err := client.Get(serverURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready after 120s")
}

func writeKubeconfig(path, serverURL, caFile, token string) error {
	user := "{}"
	if token != "" {
		user = fmt.Sprintf("{token: %q}", token)
	}
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: netpilot-test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: user
  user: %s
contexts:
- name: netpilot-test
  context: {cluster: netpilot-test, user: user, namespace: default}
current-context: netpilot-test
`, serverURL, caFile, user)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const unusedKubeconfig = `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "http://127.1.2.3:12345"}
  name: unused
contexts:
- context: {cluster: unused, user: unused}
  name: unused
current-context: unused
users:
- name: unused
  user: {username: unused, password: unused}
`
