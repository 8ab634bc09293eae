//! Every wire type lives here. The transport issue fills in the message enums and the codec; for
//! now this module only fixes the protocol version that `--version` reports and that will be
//! folded into netcode's protocol id.

/// Version of the wire protocol. Bump it on any incompatible change to a wire type.
pub const PROTOCOL_VERSION: u16 = 1;
