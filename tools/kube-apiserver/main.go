// Command netpilot-kube-apiserver is a real Kubernetes API server for tests: the
// upstream kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver, 1.37) on an embedded etcd.
//
// It serves the built-in APIs (core/v1, apps/v1, policy/v1, networking.k8s.io/v1 ...) with
// their defaulting, validation and admission, and CRDs with their custom resources, so a
// server-side dry-run apply of a Deployment, a NetworkPolicy or a Strimzi Kafka is checked as
// a cluster would check it. There are no controllers, no scheduler and no kubelet: nothing
// runs, objects are only stored (or, with dryRun=All, only validated).
//
// Authentication and authorization: a static bearer token in group system:masters is written
// into <data-dir>/kubeconfig; <data-dir>/anonymous.kubeconfig has no credentials and is
// refused by RBAC (403) for anything but discovery and health.
//
// Usage: netpilot-kube-apiserver --data-dir DIR
// Prints "READY https://127.0.0.1:<port>" on stdout once /readyz is ok; stops on SIGTERM.
// Addresses: everything listens on 127.0.0.1; the Service ClusterIP range is a documentation
// range (198.18.0.0/24) that is only allocated in etcd, never configured on an interface.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd data, serving certs, keys and kubeconfigs (required)")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "--data-dir is required")
		os.Exit(2)
	}
	if err := run(*dataDir); err != nil {
		fmt.Fprintf(os.Stderr, "netpilot-kube-apiserver: %v\n", err)
		os.Exit(1)
	}
}

func run(dataDir string) error {
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

	saKey, saPub, err := writeServiceAccountKeys(dataDir)
	if err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	tokens := filepath.Join(dataDir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",netpilot-test,netpilot-test,system:masters\n"), 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(dataDir, "certs")
	cmd := app.NewAPIServerCommand() // installs the SIGTERM handler: the server stops on it
	cmd.SetArgs([]string{
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--cert-dir", certDir,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "198.18.0.0/24",
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		// No kubelets and no Service endpoints to reconcile: nothing here runs.
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	})
	errCh := make(chan error, 1)
	go func() { errCh <- cmd.Execute() }()

	serverURL := fmt.Sprintf("https://127.0.0.1:%d", port)
	caFile := filepath.Join(certDir, "apiserver.crt")
	if err := waitReady(serverURL, caFile, token, errCh); err != nil {
		return err
	}
	if err := writeKubeconfig(filepath.Join(dataDir, "kubeconfig"), serverURL, caFile, token); err != nil {
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

func writeServiceAccountKeys(dataDir string) (keyPath, pubPath string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dataDir, "sa.key"), filepath.Join(dataDir, "sa.pub")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeLoopbackURL() (*url.URL, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
}

// waitReady polls /readyz (every post-start hook done, including the bootstrap RBAC roles)
// for up to 180 s; the caller's read of stdout ends when this process exits.
func waitReady(serverURL, caFile, token string, errCh <-chan error) error {
	deadline := time.Now().Add(180 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errCh:
			return fmt.Errorf("server stopped before ready: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			continue // the serving certificate is written while the server starts
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
		}}
		req, _ := http.NewRequest(http.MethodGet, serverURL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready after 180s")
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
