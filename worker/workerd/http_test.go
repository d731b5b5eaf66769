package workerd

import (
	"strings"
	"testing"
)

func TestTokenTag(t *testing.T) {
	t.Parallel()
	if tokenTag("") != "" || tokenTag("a") == tokenTag("b") || strings.Contains(tokenTag("secret"), "secret") {
		t.Errorf("tokenTag: %q %q %q", tokenTag(""), tokenTag("a"), tokenTag("secret"))
	}
}
