package server

import (
	"cmp"
	"slices"
)

func sortJobsByID(js []*job) {
	slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.id, b.id) })
}
