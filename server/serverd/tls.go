package serverd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/gworkerd/gworkerd/config"
)

// tlsConfig loads what --ssl needs: the server certificate and key and,
// with --ssl-ca-file, the CA that client certificates must chain to when
// a client presents one (gearmand does not require them either). It
// returns nil without --ssl. Errors name the setting and where it came
// from.
func tlsConfig(cfg *config.Server) (*tls.Config, error) {
	if !cfg.SSL {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.SSLCertificate, cfg.SSLKey)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: cannot load the TLS certificate %s with key %s: %w",
			cfg.Source("ssl_certificate"), cfg.Source("ssl_key"), cfg.SSLCertificate, cfg.SSLKey, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.SSLCAFile != "" {
		pem, err := os.ReadFile(cfg.SSLCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Source("ssl_ca_file"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", cfg.Source("ssl_ca_file"), cfg.SSLCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// wrapTLS makes every listener speak TLS with tc; nil tc leaves them.
func wrapTLS(lns []net.Listener, tc *tls.Config) []net.Listener {
	if tc == nil {
		return lns
	}
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = tls.NewListener(ln, tc)
	}
	return out
}
