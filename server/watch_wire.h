// The bytes of ChangeStream.Watch's answers (proto/watch.proto
// WatchResponse), written straight from binlog events: the gRPC service
// sends them as they are, so an event that N watchers at the head all
// deliver whole is encoded once (server/watch_feed.h keeps that encoding
// beside the event), not copied and serialized N times.
//
// The output parses as the WatchResponse the service would otherwise have
// built: each event with the changes inside the watcher's bounds, in the
// write's order, a DELETE without a value; then progress and head.
// Pure functions, any thread.
#pragma once

#include <string>

#include "proto/event.pb.h"
#include "relaykv/gtid.h"
#include "server/watch_filter.h"

namespace relaykv {

// Appends `event` as one `events` entry of a WatchResponse (field tag and
// length included) with its changes inside `bounds`, or all of them when
// `bounds` is null. False, nothing appended, when none is (marker events,
// which have no changes, never are).
bool AppendWatchEvent(const v1::Event& event, const WatchBounds* bounds, std::string* out);

// Whether `event` has changes and every one is inside `bounds`: then its
// whole encoding (AppendWatchEvent with no bounds) is what the watcher gets.
bool AllInside(const v1::Event& event, const WatchBounds& bounds);

// Appends a WatchResponse's `progress` and `head`.
void AppendWatchPosition(const Gtid& progress, const Gtid& head, std::string* out);

}  // namespace relaykv
