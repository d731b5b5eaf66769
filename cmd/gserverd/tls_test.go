package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/monitor"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key signed by the CA, as PEM.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Checklist (Ops) "Optional: TLS on the Gear port".
//
// TestBinaryTLS runs gserverd with gearmand's --ssl flags: clients that
// speak TLS get the binary and the admin protocol; a plain client gets
// nothing; a client certificate from another CA is refused; the HTTP
// endpoint still submits jobs (over TLS to its own port).
func TestBinaryTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, other := newTestCA(t, "gworkerd test CA"), newTestCA(t, "someone else")
	srvCert, srvKey := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	badCert, badKey := other.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	hport := strconv.Itoa(testpeer.FreePort(t))
	p := startGserverd(t, "-q", "builtin", "--ssl",
		"--ssl-ca-file", writeFile(t, dir, "ca.pem", ca.pem),
		"--ssl-certificate", writeFile(t, dir, "server.pem", srvCert),
		"--ssl-key", writeFile(t, dir, "server.key", srvKey),
		"--http-listen", "127.0.0.1:"+hport)
	defer p.Stop()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dialTLS := func(certs ...tls.Certificate) (*tls.Conn, error) {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if len(certs) > 0 {
			// Present the certificate even when the server's list of
			// acceptable CAs does not name its issuer.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
		c, err := d.Dial("tcp", p.Addr)
		if err != nil {
			return nil, err
		}
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		return tc, nil
	}
	echoOver := func(c net.Conn) (string, error) {
		if err := protocol.WritePacket(c, protocol.Req, protocol.EchoReq, []byte("over tls")); err != nil {
			return "", err
		}
		f, err := protocol.NewReader(c, protocol.Limits{}).Next()
		if err != nil {
			return "", err
		}
		if f.Text || f.Packet.Type != protocol.EchoRes {
			return "", io.ErrUnexpectedEOF
		}
		return string(f.Packet.Args[0]), nil
	}

	// No client certificate, and one from the trusted CA: both served.
	for _, certs := range [][]tls.Certificate{nil, {mustPair(t, cliCert, cliKey)}} {
		c, err := dialTLS(certs...)
		if err != nil {
			t.Fatalf("TLS dial with %d client certificates: %v", len(certs), err)
		}
		if got, err := echoOver(c); err != nil || got != "over tls" {
			t.Errorf("ECHO over TLS: %q, %v", got, err)
		}
		if _, err := c.Write([]byte("version\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
			t.Errorf("admin version over TLS: %q, %v", line, err)
		}
		c.Close()
	}
	// A certificate from another CA: the handshake fails.
	if c, err := dialTLS(mustPair(t, badCert, badKey)); err == nil {
		if _, err := echoOver(c); err == nil {
			t.Error("a client certificate from an unknown CA was accepted")
		}
		c.Close()
	}
	// A plain client gets no Gearman answer.
	nc, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := echoOver(nc); err == nil {
		t.Errorf("plain ECHO answered %q on a TLS port", got)
	}
	nc.Close()

	// The HTTP endpoint submits through its own TLS listener.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, "HTTP endpoint ready", func() bool {
		resp, err := hc.Get("http://127.0.0.1:" + hport + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+hport+"/api/v1/jobs/tlsjob", strings.NewReader("x"))
	req.Header.Set("X-Gearman-Background", "true")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("HTTP submit with --ssl: %s\n%s", resp.Status, p.Output())
	}
	c, err := dialTLS()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("status\n")); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != "tlsjob\t1\t0\t0\n" {
		t.Errorf("status after the HTTP submit: %q", line)
	}
}

func mustPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBinaryTLSErrors: bad TLS settings stop gserverd at start with the
// setting's name.
func TestBinaryTLSErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	cert, key := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	certPath, keyPath := writeFile(t, dir, "s.pem", cert), writeFile(t, dir, "s.key", key)
	notPEM := writeFile(t, dir, "junk.pem", []byte("junk"))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no key", nil, []string{"--ssl", "--ssl-certificate", certPath}, "--ssl: TLS needs --ssl-key (ssl_key in the file, or GEARMAND_SERVER_KEY)"},
		{"missing certificate file", nil, []string{"--ssl", "--ssl-certificate", filepath.Join(dir, "nope.pem"), "--ssl-key", keyPath},
			"flag --ssl-certificate and flag --ssl-key: cannot load the TLS certificate"},
		{"CA file without PEM", nil, []string{"--ssl", "--ssl-certificate", certPath, "--ssl-key", keyPath, "--ssl-ca-file", notPEM},
			"flag --ssl-ca-file: " + notPEM + " holds no PEM certificate"},
		{"GEARMAND_SERVER_KEY names a missing file", []string{"GEARMAND_SERVER_KEY=" + filepath.Join(dir, "gone.key")},
			[]string{"--ssl", "--ssl-certificate", certPath, "--ssl-key", keyPath}, "environment variable GEARMAND_SERVER_KEY: cannot load the TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runBinary(t, tc.env, append([]string{"-q", "builtin", "-L", "127.0.0.1", "-p", "0", "--http-listen", ""}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want non-zero and %q", code, errOut, tc.want)
			}
		})
	}
}

// A TLS client that starts its handshake and stalls is closed after
// --packet-timeout, like a plain client that stalls inside a packet
// (issue 10, item 8): it cannot hold a connection for ever.
func TestBinaryTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "gworkerd test CA")
	srvCert, srvKey := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	p := logOnFailure(t, startGserverd(t, "-q", "builtin", "--ssl", "--packet-timeout", "1s",
		"--ssl-certificate", writeFile(t, dir, "server.pem", srvCert),
		"--ssl-key", writeFile(t, dir, "server.key", srvKey)))
	stalled := dialOpen(t, p.Addr)
	if _, err := stalled.Write([]byte{0x16, 0x03, 0x01}); err != nil { // 3 bytes of a ClientHello record header
		t.Fatal(err)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := stalled.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("stalled handshake: read %d bytes, %v; want EOF (closed by the server)", n, err)
	}
	// The log reaches us through a pipe: wait for it.
	eventually(t, "the log line about the handshake timeout", func() bool {
		return strings.Contains(p.Output(), "TLS handshake not completed in time")
	})
	// A client that completes its handshake is served as before.
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	c, err := tls.Dial("tcp", p.Addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "version\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("version over TLS: %q, %v", line, err)
	}
}

// TestBinaryHTTPSubmitTLS: with --ssl, both HTTP front-ends (the
// endpoint's POST /api/v1/jobs/{function} and -r http) submit jobs in
// process, with no Gearman client, TLS or plain: while a foreground
// submit of each waits, gserverd has no connection at all
// (/api/v1/server), and when the HTTP clients leave, their queued jobs
// go as a disconnecting client's do. Background submits are answered
// at once.
func TestBinaryHTTPSubmitTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "gworkerd test CA")
	srvCert, srvKey := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	hport := strconv.Itoa(testpeer.FreePort(t))
	base := "http://127.0.0.1:" + hport
	p := logOnFailure(t, startGserverd(t, "-q", "builtin", "--ssl",
		"--ssl-certificate", writeFile(t, dir, "server.pem", srvCert),
		"--ssl-key", writeFile(t, dir, "server.key", srvKey),
		"--http-listen", "127.0.0.1:"+hport, "-r", "http", "--http-port", "0"))
	defer p.Stop()
	var proto string
	eventually(t, "gserverd logs the HTTP protocol's address", func() bool {
		m := httpProtocolAddr.FindStringSubmatch(p.Output())
		if m != nil {
			proto = m[1]
		}
		return m != nil
	})

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string, v any) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %v", path, resp.Status, err)
		}
	}
	eventually(t, "HTTP endpoint ready", func() bool {
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	queued := func() map[string]int {
		var fns []monitor.FunctionInfo
		get("/api/v1/functions", &fns)
		m := map[string]int{}
		for _, f := range fns {
			m[f.Name] = f.Queued
		}
		return m
	}

	// Background: 202 from the endpoint, JOB_CREATED from -r http.
	req, _ := http.NewRequest("POST", base+"/api/v1/jobs/bg1", strings.NewReader("x"))
	req.Header.Set("X-Gearman-Background", "true")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("background submit to the endpoint: %s", resp.Status)
	}
	pc, err := net.DialTimeout("tcp", proto, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(pc, "POST /bg2 HTTP/1.0\r\nX-Gearman-Background: true\r\nContent-Length: 1\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(pc); err != nil || !strings.Contains(string(b), "X-Gearman-Command: JOB_CREATED\r\n") {
		t.Fatalf("background submit over -r http: %q, %v", b, err)
	}
	pc.Close()

	// Foreground, one over each front-end, waiting for a worker.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	left := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/jobs/fg1", strings.NewReader("x"))
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		left <- err
	}()
	pc, err = net.DialTimeout("tcp", proto, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := io.WriteString(pc, "POST /fg2 HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both foreground jobs queued", func() bool {
		q := queued()
		return q["fg1"] == 1 && q["fg2"] == 1
	})
	var si monitor.ServerInfo
	get("/api/v1/server", &si)
	if si.Connections != 0 || si.Jobs != 4 || si.Submitted != 4 {
		t.Errorf("while two foreground HTTP submits wait: %d connections, %d jobs, %d submitted; want 0, 4, 4", si.Connections, si.Jobs, si.Submitted)
	}

	// The HTTP clients leave: their jobs go.
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled request: %v", err)
	}
	pc.Close()
	eventually(t, "the foreground jobs go with their HTTP clients", func() bool {
		q := queued()
		return q["fg1"] == 0 && q["fg2"] == 0 && q["bg1"] == 1 && q["bg2"] == 1
	})
}
