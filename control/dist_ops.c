/* SPDX-License-Identifier: Apache-2.0 */
/* The table of distribution operations: names, meanings, which carry a
 * payload. See dist_msg.h. */
#include "control/dist_msg.h"

#include <stddef.h>

#include "control/dist_internal.h"

/* ---- small helpers ------------------------------------------------------- */

static const char *const dop_names[] = {
    [EDI_DOP_LINK] = "LINK",
    [EDI_DOP_SEND] = "SEND",
    [EDI_DOP_EXIT] = "EXIT",
    [EDI_DOP_UNLINK] = "UNLINK",
    [EDI_DOP_NODE_LINK] = "NODE_LINK",
    [EDI_DOP_REG_SEND] = "REG_SEND",
    [EDI_DOP_GROUP_LEADER] = "GROUP_LEADER",
    [EDI_DOP_EXIT2] = "EXIT2",
    [EDI_DOP_SEND_TT] = "SEND_TT",
    [EDI_DOP_EXIT_TT] = "EXIT_TT",
    [EDI_DOP_REG_SEND_TT] = "REG_SEND_TT",
    [EDI_DOP_EXIT2_TT] = "EXIT2_TT",
    [EDI_DOP_MONITOR_P] = "MONITOR_P",
    [EDI_DOP_DEMONITOR_P] = "DEMONITOR_P",
    [EDI_DOP_MONITOR_P_EXIT] = "MONITOR_P_EXIT",
    [EDI_DOP_SEND_SENDER] = "SEND_SENDER",
    [EDI_DOP_SEND_SENDER_TT] = "SEND_SENDER_TT",
    [EDI_DOP_PAYLOAD_EXIT] = "PAYLOAD_EXIT",
    [EDI_DOP_PAYLOAD_EXIT_TT] = "PAYLOAD_EXIT_TT",
    [EDI_DOP_PAYLOAD_EXIT2] = "PAYLOAD_EXIT2",
    [EDI_DOP_PAYLOAD_EXIT2_TT] = "PAYLOAD_EXIT2_TT",
    [EDI_DOP_PAYLOAD_MONITOR_P_EXIT] = "PAYLOAD_MONITOR_P_EXIT",
    [EDI_DOP_SPAWN_REQUEST] = "SPAWN_REQUEST",
    [EDI_DOP_SPAWN_REQUEST_TT] = "SPAWN_REQUEST_TT",
    [EDI_DOP_SPAWN_REPLY] = "SPAWN_REPLY",
    [EDI_DOP_SPAWN_REPLY_TT] = "SPAWN_REPLY_TT",
    [EDI_DOP_ALIAS_SEND] = "ALIAS_SEND",
    [EDI_DOP_ALIAS_SEND_TT] = "ALIAS_SEND_TT",
    [EDI_DOP_UNLINK_ID] = "UNLINK_ID",
    [EDI_DOP_UNLINK_ID_ACK] = "UNLINK_ID_ACK",
    [EDI_DOP_ALTACT_SIG_SEND] = "ALTACT_SIG_SEND",
};

const char *edi_dop_name(int op)
{
    if (op <= 0 || (size_t)op >= sizeof dop_names / sizeof dop_names[0] ||
        dop_names[op] == NULL)
        return "UNKNOWN";
    return dop_names[op];
}

static const uint8_t dop_sig[] = {
    [EDI_DOP_LINK] = EDI_SIG_LINK,
    [EDI_DOP_SEND] = EDI_SIG_SEND,
    [EDI_DOP_EXIT] = EDI_SIG_EXIT,
    [EDI_DOP_UNLINK] = EDI_SIG_UNLINK,
    [EDI_DOP_REG_SEND] = EDI_SIG_REG_SEND,
    [EDI_DOP_EXIT2] = EDI_SIG_EXIT2,
    [EDI_DOP_SEND_TT] = EDI_SIG_SEND,
    [EDI_DOP_EXIT_TT] = EDI_SIG_EXIT,
    [EDI_DOP_REG_SEND_TT] = EDI_SIG_REG_SEND,
    [EDI_DOP_EXIT2_TT] = EDI_SIG_EXIT2,
    [EDI_DOP_MONITOR_P] = EDI_SIG_MONITOR,
    [EDI_DOP_DEMONITOR_P] = EDI_SIG_DEMONITOR,
    [EDI_DOP_MONITOR_P_EXIT] = EDI_SIG_MONITOR_EXIT,
    [EDI_DOP_SEND_SENDER] = EDI_SIG_SEND,
    [EDI_DOP_SEND_SENDER_TT] = EDI_SIG_SEND,
    [EDI_DOP_PAYLOAD_EXIT] = EDI_SIG_EXIT,
    [EDI_DOP_PAYLOAD_EXIT_TT] = EDI_SIG_EXIT,
    [EDI_DOP_PAYLOAD_EXIT2] = EDI_SIG_EXIT2,
    [EDI_DOP_PAYLOAD_EXIT2_TT] = EDI_SIG_EXIT2,
    [EDI_DOP_PAYLOAD_MONITOR_P_EXIT] = EDI_SIG_MONITOR_EXIT,
    [EDI_DOP_SPAWN_REQUEST] = EDI_SIG_SPAWN_REQUEST,
    [EDI_DOP_SPAWN_REQUEST_TT] = EDI_SIG_SPAWN_REQUEST,
    [EDI_DOP_SPAWN_REPLY] = EDI_SIG_SPAWN_REPLY,
    [EDI_DOP_SPAWN_REPLY_TT] = EDI_SIG_SPAWN_REPLY,
    [EDI_DOP_ALIAS_SEND] = EDI_SIG_SEND,
    [EDI_DOP_ALIAS_SEND_TT] = EDI_SIG_SEND,
    [EDI_DOP_UNLINK_ID] = EDI_SIG_UNLINK,
    [EDI_DOP_UNLINK_ID_ACK] = EDI_SIG_UNLINK_ACK,
};

edi_sig edi_dop_sig(int op)
{
    if (op < 0 || (size_t)op >= sizeof dop_sig)
        return EDI_SIG_NONE;
    return (edi_sig)dop_sig[op];
}

/* Does op carry a payload term after its control tuple? */
int edi_dop_has_payload(int op)
{
    switch (op) {
    case EDI_DOP_SEND:
    case EDI_DOP_SEND_TT:
    case EDI_DOP_REG_SEND:
    case EDI_DOP_REG_SEND_TT:
    case EDI_DOP_SEND_SENDER:
    case EDI_DOP_SEND_SENDER_TT:
    case EDI_DOP_PAYLOAD_EXIT:
    case EDI_DOP_PAYLOAD_EXIT_TT:
    case EDI_DOP_PAYLOAD_EXIT2:
    case EDI_DOP_PAYLOAD_EXIT2_TT:
    case EDI_DOP_PAYLOAD_MONITOR_P_EXIT:
    case EDI_DOP_SPAWN_REQUEST:
    case EDI_DOP_SPAWN_REQUEST_TT:
    case EDI_DOP_ALIAS_SEND:
    case EDI_DOP_ALIAS_SEND_TT:
    case EDI_DOP_ALTACT_SIG_SEND:
        return 1;
    default:
        return 0;
    }
}
