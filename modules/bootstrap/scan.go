package bootstrap

import "database/sql"

// StringOrNil is the *string of a nullable text column scanned into a sql.NullString: the
// reflection-free scans of the read path (catalog entries, retained rows, run rows) use it
// instead of scanning into a **string, which database/sql handles through reflection.
func StringOrNil(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	v := s.String
	return &v
}
