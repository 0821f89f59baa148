/* The floor of a conntrack census: a ctnetlink table dump (IPv4 and IPv6)
 * whose entries are counted by header and otherwise ignored, so its time is
 * the kernel's own (walking the table and formatting every entry). The
 * census benchmark prints it beside cttune's census; built by that script. */
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) { perror("socket(NETLINK_NETFILTER)"); return 1; }
    struct {
        struct nlmsghdr header;
        struct nfgenmsg body;
    } request;
    memset(&request, 0, sizeof(request));
    request.header.nlmsg_len = sizeof(request);
    request.header.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = 1;
    request.body.nfgen_family = AF_UNSPEC;
    request.body.version = NFNETLINK_V0;
    if (send(fd, &request, sizeof(request), 0) < 0) { perror("send"); return 1; }
    static char buffer[65536];
    long entries = 0;
    for (;;) {
        ssize_t received = recv(fd, buffer, sizeof(buffer), 0);
        if (received < 0) { perror("recv"); return 1; }
        int left = (int)received;
        for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, left); message = NLMSG_NEXT(message, left)) {
            if (message->nlmsg_type == NLMSG_DONE) { printf("%ld\n", entries); return 0; }
            if (message->nlmsg_type == NLMSG_ERROR) { fprintf(stderr, "dump failed\n"); return 1; }
            entries++;
        }
    }
}
