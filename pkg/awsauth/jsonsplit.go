package awsauth

import (
	"encoding/json"
	"errors"
)

// The authenticator's view of a section is JSON written by encoding/json
// (sigs.k8s.io/yaml.YAMLToJSON). Cutting it into entries and fields with
// encoding/json itself — into []json.RawMessage, then each entry into
// map[string]json.RawMessage — checks and scans the whole text twice more
// and was a fifth of the engine's time on a large aws-auth. jsonArray and
// jsonObject cut it once, giving exactly what those calls give (the same
// raw values, the last of duplicate keys winning); anything they do not
// recognise as well-formed is handed to encoding/json, so its errors stay
// the same.

var errNotSplit = errors.New("not split")

// jsonArray is json.Unmarshal(b, &[]json.RawMessage{}).
func jsonArray(b []byte) ([]json.RawMessage, error) {
	if out, err := splitArray(b); err == nil {
		return out, nil
	}
	var items []json.RawMessage
	err := json.Unmarshal(b, &items)
	return items, err
}

// jsonObject is json.Unmarshal(b, &map[string]json.RawMessage{}).
func jsonObject(b []byte) (map[string]json.RawMessage, error) {
	if out, err := splitObject(b); err == nil {
		return out, nil
	}
	var obj map[string]json.RawMessage
	err := json.Unmarshal(b, &obj)
	return obj, err
}

func splitArray(b []byte) ([]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, errNotSplit
	}
	out := []json.RawMessage{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out, endOf(b, i+1)
	}
	for {
		j, err := skipValue(b, i)
		if err != nil {
			return nil, err
		}
		out = append(out, json.RawMessage(b[i:j]))
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, errNotSplit
		}
		switch b[i] {
		case ']':
			return out, endOf(b, i+1)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, errNotSplit
		}
	}
}

func splitObject(b []byte) (map[string]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errNotSplit
	}
	out := map[string]json.RawMessage{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return out, endOf(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, errNotSplit
		}
		k, err := skipString(b, i)
		if err != nil {
			return nil, err
		}
		key, ok := jsonString(b[i:k])
		if !ok {
			return nil, errNotSplit
		}
		i = skipSpace(b, k)
		if i >= len(b) || b[i] != ':' {
			return nil, errNotSplit
		}
		i = skipSpace(b, i+1)
		j, err := skipValue(b, i)
		if err != nil {
			return nil, err
		}
		out[key] = json.RawMessage(b[i:j])
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, errNotSplit
		}
		switch b[i] {
		case '}':
			return out, endOf(b, i+1)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, errNotSplit
		}
	}
}

// endOf reports whether only whitespace follows b[i:].
func endOf(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errNotSplit
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\':
			j++
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, errNotSplit // encoding/json refuses it: let it say so
		}
	}
	return 0, errNotSplit
}

// skipValue returns the index after the value starting at b[i]. Scalars
// other than strings must be valid JSON literals or numbers as a whole,
// checked with encoding/json's own validator.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotSplit
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				k, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = k - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if !json.Valid(b[i : j+1]) {
						return 0, errNotSplit
					}
					return j + 1, nil
				}
			}
		}
		return 0, errNotSplit
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != ']' && b[j] != '}' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i || !json.Valid(b[i:j]) {
			return 0, errNotSplit
		}
		return j, nil
	}
}
