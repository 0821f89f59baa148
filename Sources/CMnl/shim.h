#ifndef CTTUNE_CMNL_SHIM_H
#define CTTUNE_CMNL_SHIM_H

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>
#include <linux/if_addr.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The attributes of one ctnetlink conntrack message that cttune reads.
 * Decoding in C keeps the per-entry cost to one call: mnl_attr_for_each and
 * mnl_attr_for_each_nested are macros Swift cannot import, and a census walks
 * millions of messages. */
struct cttune_ct_entry {
    uint8_t family;    /* nfgen_family: AF_INET or AF_INET6 */
    uint8_t l4proto;   /* CTA_TUPLE_ORIG > CTA_TUPLE_PROTO > CTA_PROTO_NUM; 0 when absent */
    uint8_t tcp_state; /* CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE; 255 when absent */
    uint8_t has_timeout;
    uint8_t has_status;
    uint8_t has_id;
    uint8_t message;   /* IPCTNL_MSG_CT_NEW or IPCTNL_MSG_CT_DELETE (events) */
    uint16_t nl_flags; /* nlmsg_flags: NLM_F_CREATE marks a NEW event, not an UPDATE */
    uint32_t status;   /* CTA_STATUS, IPS_* bits, host order */
    uint32_t timeout;  /* CTA_TIMEOUT: seconds left, host order */
    uint32_t id;       /* CTA_ID: stable for the entry's life, host order */
    /* The original direction's tuple, for flow classes: addresses in network
     * order (IPv4 in the first 4 bytes), ports in host order. */
    uint8_t has_addresses;
    uint8_t has_ports;
    uint8_t has_icmp_type;
    uint8_t icmp_type;     /* CTA_PROTO_ICMP_TYPE or CTA_PROTO_ICMPV6_TYPE */
    uint16_t source_port;  /* CTA_PROTO_SRC_PORT */
    uint16_t destination_port; /* CTA_PROTO_DST_PORT */
    uint8_t source[16];    /* CTA_IP_V4_SRC / CTA_IP_V6_SRC */
    uint8_t destination[16];
};

/* Copies an address attribute of `want` bytes into out; 1 when it was there whole. */
static inline int cttune_attr_address(const struct nlattr *attr, uint16_t want, uint8_t *out) {
    if (mnl_attr_get_payload_len(attr) < want) return 0;
    memcpy(out, mnl_attr_get_payload(attr), want);
    return 1;
}

/* Reads a big-endian u16 attribute (ports). */
static inline uint16_t cttune_attr_be16(const struct nlattr *attr) {
    uint16_t value;
    memcpy(&value, mnl_attr_get_payload(attr), sizeof(value));
    return ntohs(value);
}

/* Reads a big-endian u32 attribute whose length was checked. */
static inline uint32_t cttune_attr_be32(const struct nlattr *attr) {
    uint32_t value;
    memcpy(&value, mnl_attr_get_payload(attr), sizeof(value));
    return ntohl(value);
}

/* Decodes the census attributes of a conntrack message (a dump reply or an
 * event). Unknown and short attributes are skipped, never read past.
 * tuples 0: the addresses, ports and ICMP type are not read (a census without
 * flow classes); the protocol number always is.
 * Returns 0, or -1 when the message is too short to carry an nfgenmsg. */
static inline int cttune_ct_decode(const struct nlmsghdr *nlh, struct cttune_ct_entry *out, int tuples) {
    memset(out, 0, sizeof(*out));
    out->tcp_state = 255;
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nfgenmsg))) return -1;
    const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
    out->family = nfg->nfgen_family;
    out->message = (uint8_t)(nlh->nlmsg_type & 0xff);
    out->nl_flags = nlh->nlmsg_flags;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg)) {
        uint16_t type = mnl_attr_get_type(attr);
        uint16_t len = mnl_attr_get_payload_len(attr);
        switch (type) {
        case CTA_STATUS:
            if (len >= 4) { out->status = cttune_attr_be32(attr); out->has_status = 1; }
            break;
        case CTA_TIMEOUT:
            if (len >= 4) { out->timeout = cttune_attr_be32(attr); out->has_timeout = 1; }
            break;
        case CTA_ID:
            if (len >= 4) { out->id = cttune_attr_be32(attr); out->has_id = 1; }
            break;
        case CTA_TUPLE_ORIG: {
            const struct nlattr *tuple;
            int addresses = 0, ports = 0;
            mnl_attr_for_each_nested(tuple, attr) {
                if (mnl_attr_get_type(tuple) == CTA_TUPLE_IP) {
                    if (!tuples) continue;
                    const struct nlattr *ip;
                    mnl_attr_for_each_nested(ip, tuple) {
                        switch (mnl_attr_get_type(ip)) {
                        case CTA_IP_V4_SRC: addresses += cttune_attr_address(ip, 4, out->source); break;
                        case CTA_IP_V4_DST: addresses += cttune_attr_address(ip, 4, out->destination); break;
                        case CTA_IP_V6_SRC: addresses += cttune_attr_address(ip, 16, out->source); break;
                        case CTA_IP_V6_DST: addresses += cttune_attr_address(ip, 16, out->destination); break;
                        default: break;
                        }
                    }
                    continue;
                }
                if (mnl_attr_get_type(tuple) != CTA_TUPLE_PROTO) continue;
                const struct nlattr *proto;
                mnl_attr_for_each_nested(proto, tuple) {
                    uint16_t proto_len = mnl_attr_get_payload_len(proto);
                    if (!tuples && mnl_attr_get_type(proto) != CTA_PROTO_NUM) continue;
                    switch (mnl_attr_get_type(proto)) {
                    case CTA_PROTO_NUM:
                        if (proto_len >= 1) out->l4proto = mnl_attr_get_u8(proto);
                        break;
                    case CTA_PROTO_SRC_PORT:
                        if (proto_len >= 2) { out->source_port = cttune_attr_be16(proto); ports++; }
                        break;
                    case CTA_PROTO_DST_PORT:
                        if (proto_len >= 2) { out->destination_port = cttune_attr_be16(proto); ports++; }
                        break;
                    case CTA_PROTO_ICMP_TYPE:
                    case CTA_PROTO_ICMPV6_TYPE:
                        if (proto_len >= 1) { out->icmp_type = mnl_attr_get_u8(proto); out->has_icmp_type = 1; }
                        break;
                    default:
                        break;
                    }
                }
            }
            out->has_addresses = addresses == 2;
            out->has_ports = ports == 2;
            break;
        }
        case CTA_PROTOINFO: {
            const struct nlattr *info;
            mnl_attr_for_each_nested(info, attr) {
                if (mnl_attr_get_type(info) != CTA_PROTOINFO_TCP) continue;
                const struct nlattr *tcp;
                mnl_attr_for_each_nested(tcp, info) {
                    if (mnl_attr_get_type(tcp) == CTA_PROTOINFO_TCP_STATE && mnl_attr_get_payload_len(tcp) >= 1)
                        out->tcp_state = mnl_attr_get_u8(tcp);
                }
            }
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

/* Writes a ctnetlink request (IPCTNL_MSG_CT_GET with NLM_F_DUMP for a
 * table dump) into buf, which must hold MNL_SOCKET_BUFFER_SIZE bytes.
 * nfgen_family AF_UNSPEC asks for IPv4 and IPv6 together.
 * Returns the message length to send. */
static inline uint32_t cttune_ct_request(void *buf, uint16_t message, uint16_t flags, uint32_t seq) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | message;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = seq;
    struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg));
    nfg->nfgen_family = AF_UNSPEC;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
    return nlh->nlmsg_len;
}

/* The errno an NLMSG_ERROR or NLMSG_DONE message carries (0 for an ack or a
 * clean end), positive. */
static inline int cttune_nlmsg_errno(const struct nlmsghdr *nlh) {
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nlmsgerr))) return EBADMSG;
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
        return err->error < 0 ? -err->error : err->error;
    }
    if (nlh->nlmsg_type == NLMSG_DONE && nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(int))) {
        int value;
        memcpy(&value, mnl_nlmsg_get_payload(nlh), sizeof(value));
        return value < 0 ? -value : 0;
    }
    return 0;
}

/* Writes an RTM_GETADDR dump request for every family into buf (at least
 * MNL_SOCKET_BUFFER_SIZE bytes). Returns the message length to send. */
static inline uint32_t cttune_addr_request(void *buf, uint32_t seq) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = seq;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifaddrmsg));
    ifa->ifa_family = AF_UNSPEC;
    return nlh->nlmsg_len;
}

/* The local address of an RTM_NEWADDR message: IFA_LOCAL (the address on a
 * point-to-point link's own end) over IFA_ADDRESS. Copies 4 or 16 bytes to
 * out and returns the count, 0 when the message has none. */
static inline int cttune_addr_decode(const struct nlmsghdr *nlh, uint8_t out[16]) {
    if (nlh->nlmsg_type != RTM_NEWADDR || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct ifaddrmsg))) return 0;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    uint16_t want = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
    if (want == 0) return 0;
    int found = 0;
    const struct nlattr *attr;
    mnl_attr_for_each(attr, nlh, sizeof(struct ifaddrmsg)) {
        uint16_t type = mnl_attr_get_type(attr);
        if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !found)) && mnl_attr_get_payload_len(attr) >= want) {
            memcpy(out, mnl_attr_get_payload(attr), want);
            found = want;
        }
    }
    return found;
}

/* Moves the calling thread into the network namespace open at fd. A ctnetlink
 * socket belongs to the namespace of the thread that creates it, so the census
 * of another namespace enters it first. glibc declares setns(2) only under
 * _GNU_SOURCE, which Swift's Glibc module does not define. */
static inline int cttune_enter_network_namespace(int fd) {
    return (int)syscall(SYS_setns, fd, CLONE_NEWNET);
}

#endif
