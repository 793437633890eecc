import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Starts DynamoDB Local (3.x, package software.amazon.dynamodb.services.local) bound to 127.0.0.1 only.
 *
 * <p>DynamoDB Local has no host flag and listens on all interfaces, so this sets the host on its private
 * Jetty server's connectors before starting it. Arguments are DynamoDB Local's own (-port, -inMemory, ...).
 * It also halts when the process that started it dies, because test processes never stop it themselves.
 * Prints "LoopbackDynamoDBLocal listening on 127.0.0.1:PORT" once bound; exits with 2 if it cannot start.
 */
public final class LoopbackDynamoDBLocal {
    private LoopbackDynamoDBLocal() {}

    public static void main(String[] args) throws Exception {
        exitWithParent();
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            fail("DynamoDB Local's Jetty server has no connectors", null);
        }
        for (Connector connector : connectors) {
            if (!(connector instanceof ServerConnector serverConnector)) {
                fail("unexpected Jetty connector, cannot bind it to loopback: " + connector, null);
                return;
            }
            serverConnector.setHost("127.0.0.1");
        }
        try {
            // safeStart() = Jetty start() only: it throws on a bind error (start() prints and returns) and sends no telemetry.
            proxy.safeStart();
        } catch (Exception e) {
            fail("DynamoDB Local could not start", e);
        }
        System.out.println("LoopbackDynamoDBLocal listening on 127.0.0.1:" + ((ServerConnector) connectors[0]).getLocalPort());
        System.out.flush();
        proxy.join();
    }

    /** Halts with the parent: -Dpaybridge.parentPid names it, so a parent that died before we looked is caught too. */
    private static void exitWithParent() {
        String expected = System.getProperty("paybridge.parentPid");
        java.util.Optional<ProcessHandle> parent = expected == null
                ? ProcessHandle.current().parent()
                : ProcessHandle.of(Long.parseLong(expected));
        if (expected != null && parent.isEmpty()) {
            Runtime.getRuntime().halt(0);
        }
        parent.ifPresent(p -> p.onExit().thenRun(() -> Runtime.getRuntime().halt(0)));
    }

    private static void fail(String message, Throwable cause) {
        System.err.println("LoopbackDynamoDBLocal: " + message);
        if (cause != null) {
            cause.printStackTrace();
        }
        System.err.flush();
        Runtime.getRuntime().halt(2);
    }
}
