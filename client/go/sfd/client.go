// Package sfd is a small Go client of the sfd fine-tuning daemon (API sfd.v1 over gRPC).
//
//	c, err := sfd.Dial(ctx, sfd.Options{Socket: "sfd-state/sfd.sock"})
//	job, err := c.Submit(ctx, jobYAML, "")
//	err = c.Follow(ctx, job.Id, 0, func(ev *sfdv1.JobEvent) error { ...; return nil })
//
// Errors from the daemon are *Error values carrying its status code and message unchanged.
// The generated stubs (package sfdv1) come from proto/sfd/v1/sfd.proto at build time.
package sfd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"sfd/client/go/sfdv1"
)

// Options say how to reach the daemon: a Unix socket (the default, owner-only) or TCP with an
// optional bearer token and TLS.
type Options struct {
	Socket        string        // Unix socket path; default $SFD_SOCKET, else sfd-state/sfd.sock
	Address       string        // host:port for TCP instead of the socket
	Token         string        // bearer token (TCP)
	TLSCA         string        // PEM CA that signed the server certificate
	TLSCert       string        // PEM client certificate (mutual TLS), with TLSKey
	TLSKey        string        // PEM client key
	TLSServerName string        // server name to verify instead of the host
	Timeout       time.Duration // per unary call; default 30 s
}

// Client is a connection to one sfd.
type Client struct {
	conn    *grpc.ClientConn
	api     sfdv1.SfdClient
	timeout time.Duration
}

// Error is a call the daemon refused: its status code and message.
type Error struct {
	Code    codes.Code
	Message string
}

func (e *Error) Error() string { return strings.ToUpper(codeName(e.Code)) + ": " + e.Message }

func codeName(c codes.Code) string {
	// codes.Code.String() gives "InvalidArgument"; sfd and sfctl print "INVALID_ARGUMENT".
	var b strings.Builder
	prevLower := false
	for _, r := range c.String() {
		upper := r >= 'A' && r <= 'Z'
		if upper && prevLower {
			b.WriteByte('_')
		}
		prevLower = !upper
		b.WriteRune(r)
	}
	return b.String()
}

// Wrap turns a gRPC status error into *Error (other errors are returned unchanged).
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return &Error{Code: s.Code(), Message: s.Message()}
	}
	return err
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code codes.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// Dial connects (lazily: the first call reports an unreachable daemon as UNAVAILABLE).
func Dial(ctx context.Context, o Options) (*Client, error) {
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	target := o.Address
	if target == "" {
		socket := o.Socket
		if socket == "" {
			socket = os.Getenv("SFD_SOCKET")
		}
		if socket == "" {
			socket = "sfd-state/sfd.sock"
		}
		target = "passthrough:///unix"
		opts = append(opts, grpc.WithInsecure(), grpc.WithContextDialer(
			func(ctx context.Context, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			}))
	} else if o.TLSCA != "" || o.TLSCert != "" {
		cfg := &tls.Config{ServerName: o.TLSServerName}
		if o.TLSCA != "" {
			pem, err := os.ReadFile(o.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("tls ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls ca %s: no PEM certificate", o.TLSCA)
			}
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("tls cert/key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(o.Token)))
	}
	conn, err := grpc.DialContext(ctx, target, opts...)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &Client{conn: conn, api: sfdv1.NewSfdClient(conn), timeout: timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// API is the generated stub, for calls this package does not wrap.
func (c *Client) API() sfdv1.SfdClient { return c.api }

func (c *Client) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Submit creates a job from job.yaml text; requestID (optional) makes it idempotent.
func (c *Client) Submit(ctx context.Context, jobYAML, requestID string) (*sfdv1.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.api.CreateJob(ctx, &sfdv1.CreateJobRequest{JobYaml: jobYAML, RequestId: requestID})
	if err != nil {
		return nil, Wrap(err)
	}
	return resp.Job, nil
}

// Get returns the job.
func (c *Client) Get(ctx context.Context, jobID string) (*sfdv1.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	job, err := c.api.GetJob(ctx, &sfdv1.GetJobRequest{JobId: jobID})
	return job, Wrap(err)
}

// Cancel cancels the job (the spec decides about a final checkpoint).
func (c *Client) Cancel(ctx context.Context, jobID string) (*sfdv1.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	job, err := c.api.CancelJob(ctx, &sfdv1.CancelJobRequest{JobId: jobID})
	return job, Wrap(err)
}

// Follow calls fn for every event of the job with seq > afterSeq: the stored ones, then live
// ones until the job has ended. If the daemon goes away it reconnects from the last seen seq
// (for up to a minute), so no event is missed or repeated. An error from fn stops it.
func (c *Client) Follow(ctx context.Context, jobID string, afterSeq int64,
	fn func(*sfdv1.JobEvent) error) error {
	last := afterSeq
	var downSince time.Time
	for {
		stream, err := c.api.StreamJobEvents(ctx, &sfdv1.StreamJobEventsRequest{
			JobId: jobID, AfterSeq: last})
		for err == nil {
			var ev *sfdv1.JobEvent
			ev, err = stream.Recv()
			if err == io.EOF {
				return nil
			}
			if err == nil {
				downSince = time.Time{}
				last = ev.Seq
				if ferr := fn(ev); ferr != nil {
					return ferr
				}
			}
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return Wrap(err)
		}
		if downSince.IsZero() {
			downSince = time.Now()
		} else if time.Since(downSince) > time.Minute {
			return Wrap(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Terminal reports whether a job in this state has ended.
func Terminal(s sfdv1.JobState) bool {
	return s == sfdv1.JobState_SUCCEEDED || s == sfdv1.JobState_FAILED ||
		s == sfdv1.JobState_CANCELLED
}
