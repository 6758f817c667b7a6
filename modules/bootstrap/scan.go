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

// StringsOrNil sets dst[i] to StringOrNil(ns[i]) for every i with one allocation for all of
// the values, where StringOrNil makes one for each: a run row has eight nullable texts.
func StringsOrNil(dst []*string, ns []sql.NullString) {
	n := 0
	for i := range ns {
		if ns[i].Valid {
			n++
		}
	}
	var vals []string
	if n > 0 {
		vals = make([]string, 0, n)
	}
	for i := range ns {
		dst[i] = nil
		if ns[i].Valid {
			vals = append(vals, ns[i].String)
			dst[i] = &vals[len(vals)-1]
		}
	}
}
