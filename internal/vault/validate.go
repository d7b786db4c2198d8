package vault

import (
	"strings"
	"unicode/utf8"
)

// Limits that Key Vault enforces and keygate keeps.
const (
	// MaxNameLength is the longest object name.
	MaxNameLength = 127

	// MaxSecretValueSize is the largest secret value in bytes (Key Vault's
	// 25 KB).
	MaxSecretValueSize = 25 * 1024

	// MaxContentTypeLength is the longest content type.
	MaxContentTypeLength = 255

	// MaxTags is how many tags an object may carry.
	MaxTags = 15

	// MaxTagKeyLength and MaxTagValueLength bound each tag, in characters.
	MaxTagKeyLength   = 512
	MaxTagValueLength = 256
)

// ValidateName checks an object name: 1 to 127 of [0-9a-zA-Z-].
func ValidateName(name string) error {
	if name == "" {
		return badParameter("name: must not be empty")
	}
	if len(name) > MaxNameLength {
		return badParameter("name: %d characters, at most %d allowed", len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return badParameter("name: %q is not allowed: use only 0-9, a-z, A-Z and -", quoteName(name))
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-'
}

// quoteName shortens a rejected name so an error message stays readable.
func quoteName(name string) string {
	if len(name) > 40 {
		return name[:40] + "..."
	}
	return name
}

// ValidateVersion checks a version id: 32 lowercase hex characters.
func ValidateVersion(version string) error {
	if len(version) != 32 {
		return badParameter("version: must be 32 hexadecimal characters")
	}
	for i := 0; i < len(version); i++ {
		c := version[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return badParameter("version: must be 32 lowercase hexadecimal characters")
		}
	}
	return nil
}

func validateContentType(ct string) error {
	if utf8.RuneCountInString(ct) > MaxContentTypeLength {
		return badParameter("contentType: longer than %d characters", MaxContentTypeLength)
	}
	return nil
}

func validateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return badParameter("tags: %d tags, at most %d allowed", len(tags), MaxTags)
	}
	for k, v := range tags {
		switch {
		case strings.TrimSpace(k) == "":
			return badParameter("tags: a tag name must not be empty")
		case utf8.RuneCountInString(k) > MaxTagKeyLength:
			return badParameter("tags: tag name %q is longer than %d characters", quoteName(k), MaxTagKeyLength)
		case utf8.RuneCountInString(v) > MaxTagValueLength:
			return badParameter("tags[%s]: value longer than %d characters", quoteName(k), MaxTagValueLength)
		}
	}
	return nil
}

func validateSecretValue(value string) error {
	if len(value) > MaxSecretValueSize {
		return badParameter("value: %d bytes, at most %d allowed", len(value), MaxSecretValueSize)
	}
	return nil
}

func validateAttributes(a Attributes) error {
	if a.NotBefore != nil && a.Expires != nil && a.Expires.Before(*a.NotBefore) {
		return badParameter("attributes.exp: must not be before attributes.nbf")
	}
	return nil
}
