package wire

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// The long-poll transport carries the same frames as a WebSocket inside
// HTTP bodies:
//
//	poll answer (GET):  {"status":N,"token":T,"messages":["<frame>",...]}
//	post answer (POST): {"status":N}
//	post body:          one frame per line (application/x-ndjson): a text
//	                    frame as is, a binary frame in padded standard base64
//
// Every answer is HTTP 200 with the logical status in the body, which is what
// phoenix.js reads. Binary frames cannot be carried in a poll answer.

// MaxPostLines is the number of lines of one POST body that are dispatched;
// Phoenix ignores further lines, and so do we.
const MaxPostLines = 100

// AppendPollStatus appends the answer {"status":N}.
func AppendPollStatus(dst []byte, status int) []byte {
	return append(strconv.AppendInt(append(dst, `{"status":`...), int64(status), 10), '}')
}

// AppendPollHead appends the start of a poll answer, up to the opening
// bracket of its messages; follow it with AppendPollMessage for each text
// frame and AppendPollTail.
func AppendPollHead(dst []byte, status int, token string) []byte {
	dst = strconv.AppendInt(append(dst, `{"status":`...), int64(status), 10)
	dst = AppendJSONString(append(dst, `,"token":`...), token)
	return append(dst, `,"messages":[`...)
}

// AppendPollMessage appends the text frame data as the i-th (from 0) JSON
// string of a poll answer's messages.
func AppendPollMessage(dst []byte, i int, data []byte) []byte {
	if i > 0 {
		dst = append(dst, ',')
	}
	if utf8.Valid(data) {
		return AppendQuoted(dst, data)
	}
	return AppendJSONString(dst, string(data))
}

// AppendPollTail closes a poll answer begun with AppendPollHead.
func AppendPollTail(dst []byte) []byte { return append(dst, "]}"...) }

// NextPostLine splits the first line off an ndjson POST body: the line
// without its "\n" or "\r\n", and the rest of the body.
func NextPostLine(body []byte) (line, rest []byte) {
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		line, rest = body[:i], body[i+1:]
	} else {
		line, rest = body, nil
	}
	return bytes.TrimSuffix(line, []byte{'\r'}), rest
}

// DecodePostLine returns the frame one non-empty line of a POST body holds.
// A line starting with '[' (a V2 frame, all phoenix.js sends) or '{' (a V1
// frame) is a text frame; any other line is base64 of a binary frame
// (neither character is in the base64 alphabet). A line that is neither
// gives an error wrapping [ErrMalformed].
func DecodePostLine(line []byte) (data []byte, binary bool, err error) {
	if len(line) > 0 && (line[0] == '[' || line[0] == '{') {
		return line, false, nil
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	n, err := base64.StdEncoding.Decode(dec, line)
	if err != nil {
		return nil, false, malformed("long-poll line is neither a JSON frame nor base64")
	}
	return dec[:n], true, nil
}
