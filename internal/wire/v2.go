package wire

import "unicode/utf8"

// v2Serializer is the V2 protocol: JSON arrays and binary frames.
type v2Serializer struct{}

func (v2Serializer) Decode(data []byte, binary bool) (Message, error) {
	if binary {
		return decodeV2Binary(data)
	}
	return decodeV2Text(data)
}

func (v2Serializer) EncodeMessage(joinRef, ref Ref, topic, event string, payload Payload) ([]byte, error) {
	if err := CheckRef("join_ref", joinRef); err != nil {
		return nil, err
	}
	if payload.Binary {
		return encodeBinary(KindPush, joinRef, nil, topic, event, payload.Data)
	}
	if err := CheckRef("ref", ref); err != nil {
		return nil, err
	}
	return encodeV2Text(joinRef, ref, topic, event, payload.JSON()), nil
}

// encodeV2Text writes [join_ref,ref,topic,event,payload], the text frame of
// a server message, a broadcast and a client push alike. The refs must have
// passed CheckRef.
func encodeV2Text(joinRef, ref Ref, topic, event string, p []byte) []byte {
	// Brackets, commas and quotes; a nil ref is written as null; 8 bytes
	// spare for escapes.
	size := 10 + max(len(joinRef), 4) + max(len(ref), 4) + len(topic) + len(event) + len(p) + 8
	buf := make([]byte, 0, size)
	buf = appendV2Head(buf, joinRef, ref, topic)
	buf = append(buf, ',')
	buf = AppendJSONString(buf, event)
	buf = append(buf, ',')
	buf = append(buf, p...)
	return append(buf, ']')
}

// appendV2Head appends `[join_ref,ref,topic`, the start of every V2 text
// frame.
func appendV2Head(buf []byte, joinRef, ref Ref, topic string) []byte {
	buf = append(buf, '[')
	buf = AppendRef(buf, joinRef)
	buf = append(buf, ',')
	buf = AppendRef(buf, ref)
	buf = append(buf, ',')
	return AppendJSONString(buf, topic)
}

func (v2Serializer) EncodeReply(joinRef, ref Ref, topic, status string, response Payload) ([]byte, error) {
	if err := CheckRef("join_ref", joinRef); err != nil {
		return nil, err
	}
	if err := CheckRef("ref", ref); err != nil {
		return nil, err
	}
	if response.Binary {
		return encodeBinary(KindReply, joinRef, ref, topic, status, response.Data)
	}
	p := response.JSON()
	buf := make([]byte, 0, 51+len(joinRef)+len(ref)+len(topic)+len(status)+len(p)+8)
	buf = appendV2Head(buf, joinRef, ref, topic)
	buf = append(buf, `,"phx_reply",{"status":`...)
	buf = AppendJSONString(buf, status)
	buf = append(buf, `,"response":`...)
	buf = append(buf, p...)
	buf = append(buf, "}]"...)
	return buf, nil
}

func (v2Serializer) EncodeBroadcast(topic, event string, payload Payload) ([]byte, error) {
	if payload.Binary {
		return encodeBinary(KindBroadcast, nil, nil, topic, event, payload.Data)
	}
	return encodeV2Text(nil, nil, topic, event, payload.JSON()), nil
}

// decodeV2Text decodes [join_ref, ref, topic, event, payload, ...extra].
func decodeV2Text(data []byte) (Message, error) {
	var m Message
	if !utf8.Valid(data) {
		return m, malformed("text frame is not valid UTF-8")
	}
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '[' {
		return m, malformed("V2 frame must be a JSON array, found %s", s.found())
	}
	s.pos++
	s.skipWS()
	n := 0
	var topic, event metaField
	if s.peek() == ']' {
		s.pos++
	} else {
		for {
			s.skipWS()
			var err error
			switch n {
			case 0:
				m.JoinRef, err = s.ref("join_ref")
			case 1:
				m.Ref, err = s.ref("ref")
			case 2:
				topic, err = s.metaString("topic")
			case 3:
				event, err = s.metaString("event")
			case 4:
				start := s.pos
				err = s.skipValue("payload", 0)
				m.Payload.Data = data[start:s.pos:s.pos]
			default:
				err = s.skipValue("extra array element", 0)
			}
			if err != nil {
				return Message{}, err
			}
			n++
			s.skipWS()
			if s.peek() == ']' {
				s.pos++
				break
			}
			if s.peek() != ',' {
				return Message{}, malformed("expected ',' or ']' after array element %d, found %s", n-1, s.found())
			}
			s.pos++
		}
	}
	if n < 5 {
		return Message{}, malformed("V2 frame has %d elements, want [join_ref,ref,topic,event,payload]", n)
	}
	s.skipWS()
	if s.pos != len(data) {
		return Message{}, malformed("trailing data after the V2 array at offset %d", s.pos)
	}
	m.Topic, m.Event = metaStrings(topic, event)
	return m, nil
}
