# The declarations of plan.pxi: what the fragments included after it may
# use (see csockserver._cengine.pxd).

# csockserver._engine.plan.Kind, as C constants (checked against it below).
cpdef enum _Kind:
    PYTHON = 0
    ACCEPT = 1
    RECVFROM = 2
    ALLOW = 3
    IN_PLACE = 4
    THREAD = 5
    FORK = 6
    NEW_HANDLER = 7
    SHUT_WR_THEN_CLOSE = 8
    CLOSE_ONLY = 9
    CLOSE_SOCKET = 10
    NO_CLOSE = 11
    NO_ACTIONS = 12
    REAP = 13
    NO_TIMEOUT_ACTION = 14
    TAKE_ONE = 15
    THREAD_BODY = 16
    REAP_OWN = 17

# One field per entry of csockserver._engine.plan.HOOKS, in its order, then the
# plan's SETTINGS (checked below): a Plan's __dict__ converts to it field by
# field.
cdef struct HookPlan:
    int get_request
    int verify_request
    int process_request
    int finish_request
    int shutdown_request
    int close_request
    int service_actions
    int handle_timeout
    int handle_request_noblock
    int process_request_thread
    int collect_children
    int proxy_protocol          # a setting: csockserver._proxy's V1|V2 mask

cdef HookPlan _read_plan(plan) except *
