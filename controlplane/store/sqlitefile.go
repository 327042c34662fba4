package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// sqliteFileMode is the mode of the SQLite database file (and of the WAL and
// shared-memory files SQLite creates beside it with the same mode): it holds
// key hashes and the server secrets, so only the owner may read it.
const sqliteFileMode = 0o600

// restrictSQLiteFile creates the database file of a SQLite DSN with mode 0600
// before SQLite opens it, and takes group and other access away from an
// existing one (and from its -wal and -shm files). In-memory databases are
// left alone.
func restrictSQLiteFile(dsn string) error {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		if strings.Contains(path[i:], "mode=memory") {
			return nil
		}
		path = path[:i]
	}
	if path == "" || path == ":memory:" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, sqliteFileMode)
	if err != nil {
		return fmt.Errorf("sqlite database %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, sqliteFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlite database %s: restrict access: %w", p, err)
		}
	}
	return nil
}
