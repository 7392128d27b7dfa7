package phx

// channelTable is a connection's current channel per topic, guarded by the
// connection's mu. Most connections join a handful of topics: up to
// channelTableList of them are kept in a slice and found by comparing
// topics, beyond that in a map. A map of one entry costs about 0.25 KiB for
// the connection's life; a slice of one, 8 bytes.
type channelTable struct {
	list    []*channel
	byTopic map[string]*channel // instead of list, once it has grown past channelTableList
	closed  bool                // the connection is closing: no more joins
}

const channelTableList = 8

func (t *channelTable) get(topic string) *channel {
	if t.byTopic != nil {
		return t.byTopic[topic]
	}
	for _, ch := range t.list {
		if ch.topic == topic {
			return ch
		}
	}
	return nil
}

func (t *channelTable) len() int {
	if t.byTopic != nil {
		return len(t.byTopic)
	}
	return len(t.list)
}

// add records ch as its topic's channel; the topic has none (remove the
// old one first).
func (t *channelTable) add(ch *channel) {
	if t.byTopic == nil && len(t.list) < channelTableList {
		t.list = append(t.list, ch)
		return
	}
	if t.byTopic == nil {
		t.byTopic = make(map[string]*channel, 2*channelTableList)
		for _, c := range t.list {
			t.byTopic[c.topic] = c
		}
		t.list = nil
	}
	t.byTopic[ch.topic] = ch
}

// remove forgets ch if it is still its topic's channel.
func (t *channelTable) remove(ch *channel) {
	if t.byTopic != nil {
		if t.byTopic[ch.topic] == ch {
			delete(t.byTopic, ch.topic)
		}
		return
	}
	t.list = removeChannel(t.list, ch)
}

// removeChannel removes ch from list, if there, moving the last element
// into its place.
func removeChannel(list []*channel, ch *channel) []*channel {
	for i, c := range list {
		if c == ch {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last]
		}
	}
	return list
}

// close empties the table, refuses further joins, and returns the channels
// it held.
func (t *channelTable) close() []*channel {
	chans := t.list
	if t.byTopic != nil {
		chans = make([]*channel, 0, len(t.byTopic))
		for _, ch := range t.byTopic {
			chans = append(chans, ch)
		}
	}
	*t = channelTable{closed: true}
	return chans
}
