package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config locates an S3-compatible bucket for NewS3.
type Config struct {
	// Endpoint is host[:port] of the S3 API (s3.amazonaws.com, minio:9000…).
	Endpoint string
	// Bucket must exist; the store does not create it.
	Bucket string
	// Region of the bucket ("" lets the client ask the server).
	Region string
	// AccessKey and SecretKey sign the requests.
	AccessKey string
	SecretKey string
	// Secure selects https.
	Secure bool
	// Prefix is put before every key ("" or a folder such as "artifacts/").
	Prefix string
}

// s3Meta is the user metadata key holding the blob's SHA-256 (sent as
// x-amz-meta-sha256).
const s3Meta = "Sha256"

type s3Store struct {
	c      *minio.Client
	bucket string
	prefix string
	opt    options
}

// NewS3 returns a Store keeping blobs in an S3-compatible bucket with the
// minio-go client. A Put spools the body to a temporary file first (so its
// size and SHA-256 are known and a too-large body uploads nothing), then
// uploads it with the SHA-256 as user metadata.
func NewS3(cfg Config, opts ...Option) (Store, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("artifacts: s3 endpoint is empty")
	case cfg.Bucket == "":
		return nil, errors.New("artifacts: s3 bucket is empty")
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return nil, fmt.Errorf("artifacts: s3 bucket %s: access key or secret key is empty", cfg.Bucket)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix+"/", true); err != nil {
			return nil, fmt.Errorf("artifacts: s3 prefix %q: %w", cfg.Prefix, err)
		}
		prefix += "/"
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: s3 endpoint %s: %w", cfg.Endpoint, err)
	}
	return &s3Store{c: c, bucket: cfg.Bucket, prefix: prefix, opt: buildOptions(opts)}, nil
}

func (s *s3Store) object(key string) string { return s.prefix + key }

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := checkKey(key, false); err != nil {
		return Info{}, err
	}
	if contentType == "" {
		contentType = DefaultContentType
	}
	if size > s.opt.maxBytes {
		return Info{}, fmt.Errorf("artifact %s: %w: %d bytes (at most %d)", key, ErrTooLarge, size, s.opt.maxBytes)
	}
	tmp, err := os.CreateTemp("", "sm-artifact-*")
	if err != nil {
		return Info{}, fmt.Errorf("artifact %s: spool: %w", key, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	info, err := copyLimited(ctx, tmp, r, size, s.opt.maxBytes)
	if err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	info.ContentType = contentType
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Info{}, fmt.Errorf("artifact %s: spool: %w", key, err)
	}
	po := minio.PutObjectOptions{
		ContentType:  contentType,
		UserMetadata: map[string]string{s3Meta: info.SHA256},
		// Over plain http minio-go signs the body in aws-chunked streaming
		// mode, which sends an empty body without Content-Length (S3 answers
		// MissingContentLength); an empty body has nothing to stream.
		DisableContentSha256: info.Size == 0,
	}
	_, err = s.c.PutObject(ctx, s.bucket, s.object(key), tmp, info.Size, po)
	if err != nil {
		return Info{}, fmt.Errorf("artifact %s: s3 put to bucket %s: %w", key, s.bucket, err)
	}
	return info, nil
}

func (s *s3Store) info(key string, oi minio.ObjectInfo) Info {
	sum := oi.UserMetadata[s3Meta]
	if sum == "" && oi.Metadata != nil {
		sum = oi.Metadata.Get("X-Amz-Meta-Sha256")
	}
	return Info{Size: oi.Size, ContentType: oi.ContentType, SHA256: sum}
}

func (s *s3Store) notFound(key string, err error) error {
	er := minio.ToErrorResponse(err)
	if er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket" {
		return fmt.Errorf("artifact %s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("artifact %s: s3 bucket %s: %w", key, s.bucket, err)
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := checkKey(key, false); err != nil {
		return nil, Info{}, err
	}
	o, err := s.c.GetObject(ctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, s.notFound(key, err)
	}
	oi, err := o.Stat()
	if err != nil {
		o.Close()
		return nil, Info{}, s.notFound(key, err)
	}
	return o, s.info(key, oi), nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key, false); err != nil {
		return Info{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.notFound(key, err)
	}
	return s.info(key, oi), nil
}

func (s *s3Store) Delete(ctx context.Context, prefix string) error {
	if err := checkKey(prefix, true); err != nil {
		return err
	}
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.object(prefix), Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("artifacts %s: s3 list bucket %s: %w", prefix, s.bucket, oi.Err)
		}
		if err := s.c.RemoveObject(ctx, s.bucket, oi.Key, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("artifacts %s: s3 delete %s: %w", prefix, oi.Key, err)
		}
	}
	return nil
}
