package wire

import "unicode/utf8"

// v1Serializer is the legacy V1 protocol: JSON objects, no binary frames.
type v1Serializer struct{}

func (v1Serializer) Decode(data []byte, binary bool) (Message, error) {
	if binary {
		return Message{}, malformed("binary frame on a V1 (vsn 1.0.0) connection")
	}
	return decodeV1Text(data)
}

// EncodeMessage drops joinRef: V1 server frames carry no join_ref.
func (v1Serializer) EncodeMessage(_, ref Ref, topic, event string, payload Payload) ([]byte, error) {
	return encodeV1Message(nil, ref, topic, event, payload)
}

func (v1Serializer) EncodeBroadcast(topic, event string, payload Payload) ([]byte, error) {
	return encodeV1Message(nil, nil, topic, event, payload)
}

// encodeV1Message writes {"topic":T,"event":E,"payload":P,"ref":REF}, with
// ,"join_ref":J before the closing brace when joinRef is not nil (only
// clients send it).
func encodeV1Message(joinRef, ref Ref, topic, event string, payload Payload) ([]byte, error) {
	if payload.Binary {
		return nil, ErrBinaryUnsupported
	}
	if err := CheckRef("ref", ref); err != nil {
		return nil, err
	}
	if err := CheckRef("join_ref", joinRef); err != nil {
		return nil, err
	}
	p := payload.JSON()
	buf := make([]byte, 0, 42+len(ref)+len(topic)+len(event)+len(p)+8+12+len(joinRef))
	buf = append(buf, `{"topic":`...)
	buf = AppendJSONString(buf, topic)
	buf = append(buf, `,"event":`...)
	buf = AppendJSONString(buf, event)
	buf = append(buf, `,"payload":`...)
	buf = append(buf, p...)
	buf = append(buf, `,"ref":`...)
	buf = AppendRef(buf, ref)
	if joinRef != nil {
		buf = append(buf, `,"join_ref":`...)
		buf = AppendRef(buf, joinRef)
	}
	return append(buf, '}'), nil
}

// encodeReply writes {"topic":T,"event":"phx_reply","payload":{"status":S,"response":R},"ref":REF}.
// V1 frames carry no join_ref.
func (v1Serializer) EncodeReply(_, ref Ref, topic, status string, response Payload) ([]byte, error) {
	if response.Binary {
		return nil, ErrBinaryUnsupported
	}
	if err := CheckRef("ref", ref); err != nil {
		return nil, err
	}
	p := response.JSON()
	buf := make([]byte, 0, 80+len(ref)+len(topic)+len(status)+len(p)+8)
	buf = append(buf, `{"topic":`...)
	buf = AppendJSONString(buf, topic)
	buf = append(buf, `,"event":"phx_reply","payload":{"status":`...)
	buf = AppendJSONString(buf, status)
	buf = append(buf, `,"response":`...)
	buf = append(buf, p...)
	buf = append(buf, `},"ref":`...)
	buf = AppendRef(buf, ref)
	buf = append(buf, '}')
	return buf, nil
}

// V1 object keys, as bits for duplicate and presence checks.
const (
	keyTopic = 1 << iota
	keyEvent
	keyPayload
	keyRef
	keyJoinRef
)

// decodeV1Text decodes {"topic","event","payload","ref","join_ref"?}. Keys
// are matched exactly (case-sensitive, after unescaping). A repeated known key
// is an error. Unknown keys are ignored, as Phoenix does, but their values
// must still be valid JSON within the depth limit. A missing join_ref leaves
// JoinRef nil; applying Phoenix's rule (a V1 join's ref is its join_ref) is
// up to the caller.
func decodeV1Text(data []byte) (Message, error) {
	var m Message
	if !utf8.Valid(data) {
		return m, malformed("text frame is not valid UTF-8")
	}
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '{' {
		return m, malformed("V1 frame must be a JSON object, found %s", s.found())
	}
	s.pos++
	s.skipWS()
	var seen int
	var topic, event metaField
	if s.peek() == '}' {
		s.pos++
	} else {
		for {
			s.skipWS()
			if s.peek() != '"' {
				return Message{}, malformed("expected an object key at offset %d, found %s", s.pos, s.found())
			}
			keyStart := s.pos
			escaped, err := s.scanString()
			if err != nil {
				return Message{}, err
			}
			keyEnd := s.pos
			key := data[keyStart+1 : keyEnd-1]
			var bit int
			if !escaped {
				bit = v1Key(key)
			} else if k, ok := unquote(data[keyStart:s.pos]); ok {
				bit = v1Key([]byte(k))
			} else {
				return Message{}, malformed("object key at offset %d is not valid Unicode", keyStart)
			}
			s.skipWS()
			if s.peek() != ':' {
				return Message{}, malformed("expected ':' after object key at offset %d, found %s", keyStart, s.found())
			}
			s.pos++
			s.skipWS()
			if seen&bit != 0 {
				return Message{}, malformed("duplicate key %s at offset %d", data[keyStart:keyEnd], keyStart)
			}
			seen |= bit
			switch bit {
			case keyTopic:
				topic, err = s.metaString("topic")
			case keyEvent:
				event, err = s.metaString("event")
			case keyPayload:
				start := s.pos
				err = s.skipValue("payload", 0)
				m.Payload.Data = data[start:s.pos:s.pos]
			case keyRef:
				m.Ref, err = s.ref("ref")
			case keyJoinRef:
				m.JoinRef, err = s.ref("join_ref")
			default:
				err = s.skipValue("value of unknown key", 0)
			}
			if err != nil {
				return Message{}, err
			}
			s.skipWS()
			if s.peek() == '}' {
				s.pos++
				break
			}
			if s.peek() != ',' {
				return Message{}, malformed("expected ',' or '}' in object, found %s", s.found())
			}
			s.pos++
		}
	}
	s.skipWS()
	if s.pos != len(data) {
		return Message{}, malformed("trailing data after the V1 object at offset %d", s.pos)
	}
	for _, k := range [...]struct {
		bit  int
		name string
	}{{keyTopic, "topic"}, {keyEvent, "event"}, {keyPayload, "payload"}, {keyRef, "ref"}} {
		if seen&k.bit == 0 {
			return Message{}, malformed("V1 message has no %q key", k.name)
		}
	}
	m.Topic, m.Event = metaStrings(topic, event)
	return m, nil
}

// v1Key returns the bit of a known V1 key, or 0.
func v1Key(k []byte) int {
	switch string(k) {
	case "topic":
		return keyTopic
	case "event":
		return keyEvent
	case "payload":
		return keyPayload
	case "ref":
		return keyRef
	case "join_ref":
		return keyJoinRef
	}
	return 0
}
