"""OwnTracks phone app: JSON over MQTT on ``owntracks/{user}/{device}[/...]``."""

from protocols.owntracks.decode import (
    Downlink,
    IgnoredMessage,
    OwnTracksLastWill,
    OwnTracksLimits,
    OwnTracksLocation,
    OwnTracksMessage,
    OwnTracksStatus,
    OwnTracksTransition,
    TransitionEvent,
    command_topic,
    decode_message,
    decode_payload,
    encode_report_location,
    parse_topic,
)

__all__ = [
    "Downlink",
    "IgnoredMessage",
    "OwnTracksLastWill",
    "OwnTracksLimits",
    "OwnTracksLocation",
    "OwnTracksMessage",
    "OwnTracksStatus",
    "OwnTracksTransition",
    "TransitionEvent",
    "command_topic",
    "decode_message",
    "decode_payload",
    "encode_report_location",
    "parse_topic",
]
